// The husk program: subcommands over the runtime library. Parsing and
// messages live here; the runtime returns errors as values.
#include <CLI/CLI.hpp>
#include <array>
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

namespace {

using AddCommand = void (*)(CLI::App&, int&);

struct Command {
  std::string_view name;
  AddCommand add;
};

// Every subcommand, in the order `husk --help` lists them.
constexpr std::array<Command, 8> kCommands{{
    {"boot", husk::cli::add_boot_command},
    {"doctor", husk::cli::add_doctor_command},
    {"exec", husk::cli::add_exec_command},
    {"run", husk::cli::add_run_command},
    {"seccomp", husk::cli::add_seccomp_command},
    {"serve", husk::cli::add_serve_command},
    {"snapshot", husk::cli::add_snapshot_command},
    {"validate", husk::cli::add_validate_command},
}};

// Registers the subcommand that argv[1] names, or all of them when it names
// none (`husk --help`, a typo): building a subcommand's options is most of
// the parsing cost of every VM start, and only one of them ever runs.
void add_commands(CLI::App& app, int argc, char** argv, int& exit_code) {
  const std::string_view first = argc > 1 ? std::string_view(argv[1]) : std::string_view();
  for (const Command& c : kCommands) {
    if (c.name == first) {
      c.add(app, exit_code);
      return;
    }
  }
  for (const Command& c : kCommands) c.add(app, exit_code);
}

}  // namespace

int main(int argc, char** argv) {
  husk::cli::start_program();

  CLI::App app{"husk: a microVM sandbox runtime"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("husk ") + husk::cli::kHuskVersion);
  int exit_code = husk::cli::kExitOk;
  add_commands(app, argc, argv, exit_code);
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
