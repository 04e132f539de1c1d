#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

// husk snapshot create JOB.toml: boots the job's VM, waits for its agent,
// pauses it and saves it into the snapshot cache (or --out DIR); prints
// the snapshot's folder.
void add_snapshot_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
