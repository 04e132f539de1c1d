#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// husk run JOB.toml: boots a VM, runs the job, reports the verdict.
void add_run_command(CLI::App& app, int& exit_code);
// husk validate JOB.toml...: checks job files without booting.
void add_validate_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
