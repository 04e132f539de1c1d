// `husk boot`: boots a kernel with a serial console and waits for the guest
// to end.
#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// Adds the subcommand; `exit_code` receives its result when it runs.
void add_boot_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
