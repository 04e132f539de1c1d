// `husk doctor`: reports whether this host can run husk guests, and how to
// fix what is missing. Exit 0 only when guests can run.
#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

void add_doctor_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
