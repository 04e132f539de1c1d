// husk-oci: an OCI runtime with runc's command line, so containerd (and
// Kubernetes through a RuntimeClass), Podman and Docker run each container
// as a husk microVM (docs/oci.md, docs/kubernetes.md).
#include <CLI/CLI.hpp>

#include <string>

#include "cli/oci/oci_cli.h"
#include "cli/version.h"

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
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : husk::oci_cli::kFailed;
  }
  return exit_code;
}
