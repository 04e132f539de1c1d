// `husk seccomp list [--json]`: every thread class's seccomp allow-list,
// each system call with its argument conditions and its reason;
// `husk seccomp counts`: the lists' sizes as the README's Markdown table.
#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

void add_seccomp_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
