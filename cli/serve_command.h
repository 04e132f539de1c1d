#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// husk serve FN.toml --listen ADDR: an HTTP endpoint where each request
// runs the function in a fresh VM (docs/serve.md).
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
