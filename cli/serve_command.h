#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// husk serve ARGS...: runs the husk-serve program next to husk with ARGS
// (docs/serve.md). serve is a program of its own so that husk does not
// load cpp-httplib; its options are defined once, in cli/serve/.
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
