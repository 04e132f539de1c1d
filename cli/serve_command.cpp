// husk serve: execs husk-serve, found next to /proc/self/exe, with every
// argument after `serve` (--help included) untouched; husk-serve parses
// them (cli/serve/serve_command.cpp). Exit code 3 when it cannot be run.
#include "cli/serve_command.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/serve/serve_command.h"

namespace husk::cli {

namespace {

int exec_husk_serve(std::vector<std::string> args) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) {
    fmt::print(stderr, "husk serve: cannot read /proc/self/exe: {}\n", ec.message());
    return kExitInternal;
  }
  std::string program = (self.parent_path() / "husk-serve").string();
  std::vector<char*> argv;
  argv.push_back(program.data());
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execv(program.c_str(), argv.data());
  fmt::print(stderr, "husk serve: cannot run {}: {} (husk-serve is built next to husk)\n", program,
             std::strerror(errno));
  return kExitInternal;
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("serve", kServeDescription);
  // Nothing is parsed here: no help flag of its own, and the first
  // argument (an option or the job) ends parsing, all of them left over
  // in order for husk-serve.
  cmd->set_help_flag();
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->callback([cmd, &exit_code] { exit_code = exec_husk_serve(cmd->remaining()); });
}

}  // namespace husk::cli
