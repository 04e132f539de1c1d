// The husk-serve program: `husk serve` (docs/serve.md). It is a program of
// its own so that husk, which every VM start runs, does not load
// cpp-httplib and what that links (OpenSSL, brotli, zlib): husk's `serve`
// subcommand execs this program with its arguments (cli/serve_command.cpp).
#include <CLI/CLI.hpp>

#include "cli/exit_codes.h"
#include "cli/program_start.h"
#include "cli/serve/serve_command.h"

int main(int argc, char** argv) {
  husk::cli::start_program();

  // Named as the user typed it: messages and --help say `husk serve`.
  CLI::App app{husk::cli::kServeDescription, "husk serve"};
  int exit_code = husk::cli::kExitOk;
  husk::cli::add_serve_options(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? husk::cli::kExitOk : husk::cli::kExitUsage;
  }
  return exit_code;
}
