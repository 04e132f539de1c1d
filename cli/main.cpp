// The husk program: subcommands over the runtime library. Parsing and
// messages live here; the runtime returns errors as values.
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "cli/boot_command.h"
#include "cli/doctor_command.h"
#include "cli/exec_command.h"
#include "cli/exit_codes.h"
#include "cli/program_start.h"
#include "cli/run_command.h"
#include "cli/seccomp_command.h"
#include "cli/serve_command.h"
#include "cli/snapshot_command.h"
#include "cli/version.h"

int main(int argc, char** argv) {
  husk::cli::start_program();

  CLI::App app{"husk: a microVM sandbox runtime"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("husk ") + husk::cli::kHuskVersion);
  int exit_code = husk::cli::kExitOk;
  husk::cli::add_boot_command(app, exit_code);
  husk::cli::add_doctor_command(app, exit_code);
  husk::cli::add_exec_command(app, exit_code);
  husk::cli::add_run_command(app, exit_code);
  husk::cli::add_seccomp_command(app, exit_code);
  husk::cli::add_serve_command(app, exit_code);
  husk::cli::add_snapshot_command(app, exit_code);
  husk::cli::add_validate_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code == 0) return 0;
    // exec keeps 0-124 for its command's status: its own usage errors are 125.
    const bool exec = argc > 1 && std::string_view(argv[1]) == "exec";
    return exec ? husk::cli::kExecHuskFailed : husk::cli::kExitUsage;
  }
  return exit_code;
}
