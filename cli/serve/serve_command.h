#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// husk serve FN.toml --listen ADDR: an HTTP endpoint where each request
// runs the function in a fresh VM (docs/serve.md).
inline constexpr const char* kServeDescription =
    "Serve a function job over HTTP: each request runs in a fresh VM (docs/serve.md)";

// Adds serve's options and positional to `app` (husk-serve's own App) and a
// callback that serves and leaves the exit code in `exit_code`.
void add_serve_options(CLI::App& app, int& exit_code);

}  // namespace husk::cli
