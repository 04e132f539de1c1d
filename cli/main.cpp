// The husk program: subcommands over the runtime library. Parsing and
// messages live here; the runtime returns errors as values.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>
#include <string_view>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/boot_command.h"
#include "cli/doctor_command.h"
#include "cli/exec_command.h"
#include "cli/exit_codes.h"
#include "cli/run_command.h"
#include "cli/seccomp_command.h"
#include "cli/serve_command.h"
#include "cli/snapshot_command.h"
#include "cli/version.h"
#include "runtime/vmm/machine.h"

int main(int argc, char** argv) {
  // The boot timeline's start (runtime/vmm/machine.h): first, before any
  // work of husk's own.
  (void)husk::vmm::process_start_stamp();
  // Logs go to stderr so stdout stays the guest's console; HUSK_LOG sets
  // the level (e.g. HUSK_LOG=debug).
  spdlog::set_default_logger(spdlog::stderr_color_mt("husk"));
  spdlog::set_level(spdlog::level::warn);
  if (const char* level = std::getenv("HUSK_LOG")) {
    spdlog::set_level(spdlog::level::from_str(level));
  }

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
