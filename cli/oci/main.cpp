// husk-oci: an OCI runtime with runc's command line, so containerd (and
// Kubernetes through a RuntimeClass), Podman and Docker run each container
// as a husk microVM (docs/oci.md, docs/kubernetes.md).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cli/oci/oci_cli.h"
#include "cli/version.h"

namespace {

// runc's `exec ID COMMAND ARGS...` stops taking options at the id, as its
// flag parser does: `exec c1 sh -c x` runs `sh -c x`. CLI11 would read the
// `-c` as exec's own --cap, so a "--" goes in after the id.
std::vector<std::string> separate_exec_command(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::set<std::string> global_values = {"--root", "--log", "--log-format", "--criu", "--rootless"};
  const std::set<std::string> exec_values = {"-p", "--process", "--pid-file", "--console-socket", "--cwd", "-e",
                                             "--env", "-u", "--user", "-g", "--additional-gids", "--process-label",
                                             "--apparmor", "-c", "--cap", "--preserve-fds"};
  size_t i = 0;
  for (; i < args.size() && args[i] != "exec"; ++i) {
    if (global_values.count(args[i]) != 0) ++i;
  }
  for (++i; i < args.size(); ++i) {
    if (args[i] == "--") return args;
    if (args[i].empty() || args[i][0] != '-') {
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, "--");
      return args;
    }
    if (exec_values.count(args[i]) != 0) ++i;
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  using husk::oci_cli::Globals;
  Globals g;
  CLI::App app{"husk-oci: an OCI runtime that runs each container as a husk microVM (runc's command line)"};
  app.require_subcommand(1);
  app.set_version_flag("-v,--version", std::string("husk-oci version ") + husk::cli::kHuskVersion +
                                           "\nspec: " + husk::oci::kOciVersion);
  app.add_option("--root", g.root, "folder for the containers' state")->capture_default_str();
  app.add_option("--log", g.log, "log file (default: stderr)");
  app.add_option("--log-format", g.log_format, "log format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_flag("--debug", g.debug, "log debug messages");
  app.add_flag("--systemd-cgroup", g.systemd_cgroup, "accepted for runc's callers; husk-oci places no host cgroups");
  // runc's other global flags that callers may pass; they change nothing here.
  std::string ignored;
  app.add_option("--criu", ignored, "accepted for runc's callers; checkpoints are not supported");
  app.add_option("--rootless", ignored, "accepted for runc's callers");
  int exit_code = 0;
  husk::oci_cli::add_create_commands(app, g, exit_code);
  husk::oci_cli::add_lifecycle_commands(app, g, exit_code);
  husk::oci_cli::add_exec_command(app, g, exit_code);
  husk::oci_cli::add_info_commands(app, g, exit_code);
  try {
    std::vector<std::string> args = separate_exec_command(argc, argv);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : husk::oci_cli::kFailed;
  }
  return exit_code;
}
