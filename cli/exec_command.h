// `husk exec`: boots a VM with the guest agent, runs one command in it,
// streams its output, shuts the VM down and exits with the command's status.
#pragma once

#include <CLI/CLI.hpp>

namespace husk::cli {

void add_exec_command(CLI::App& app, int& exit_code);

}  // namespace husk::cli
