// husk-oci: an OCI runtime with runc's command line (docs/oci.md). Each
// subcommand lives in its own file and registers itself on the app; the
// global options and the helpers they share are here.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "runtime/common/result.h"
#include "runtime/oci/container_state.h"

namespace husk::oci_cli {

// runc's global options, as containerd's shim and Podman's conmon pass them.
struct Globals {
  std::string root = "/run/husk-oci";
  std::string log;
  std::string log_format = "text";
  bool debug = false;
  bool systemd_cgroup = false;
};

// Exit codes: 0 success, 1 failure (runc's), and `run`/`exec` in the
// foreground exit with their process's status.
inline constexpr int kFailed = 1;

// Logs `e` as an error (the --log file, where containerd and conmon look
// for the reason) and prints it on stderr; returns kFailed.
int failed(const Error& e);
int failed(const std::string& message);

// Where a new container's pid goes (runc writes it atomically).
[[nodiscard]] Result<void> write_pid_file(const std::string& path, int pid);

void add_create_commands(CLI::App& app, const Globals& g, int& exit_code);   // create, run
void add_lifecycle_commands(CLI::App& app, const Globals& g, int& exit_code); // start, state, kill, delete, list
void add_exec_command(CLI::App& app, const Globals& g, int& exit_code);
void add_info_commands(CLI::App& app, const Globals& g, int& exit_code);      // features, and the unsupported ones

// Runs `body` as `cmd`'s callback, logging set up first; its value is the exit code.
void on_parsed(CLI::App* cmd, const Globals& g, int& exit_code, std::function<int()> body);

// In a forked keeper or attacher: closes the descriptors the caller passed
// on purpose (inherited without close-on-exec: containerd's shim hands its
// runtime a socket and a pipe) besides stdio, as runc's init closes them;
// husk-oci's own descriptors are all close-on-exec.
void close_inherited_fds();

// Sets up logging as the global options say (the --log file, JSON lines
// in runc's format with --log-format json).
void setup_logging(const Globals& g);

}  // namespace husk::oci_cli
