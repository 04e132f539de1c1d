// The keeper: one process per container, the one whose pid husk-oci
// reports (--pid-file, `state`). containerd's shim and Podman's conmon wait
// for that pid and take its exit status as the container's, so the keeper
// lives exactly as long as the container and ends the way its process
// ended: with its exit code, or killed by the same signal.
//
// Its life: boot the VM (the rootfs image as its read-only root disk under
// a tmpfs overlay, runtime/job's start_vm), set the clock and hostname,
// copy the bind-mounted files in, check that the process's program exists
// (runc's create fails on a missing one, so ours does too), report
// "created" to the creating husk-oci through `ready_fd`, then wait on its
// control socket (control.h) for start. Started, it runs the process
// through the agent attached to its stdio (or the console), forwards
// `kill` requests and the signals it receives to the process, and the
// terminal's size changes (SIGWINCH on the console it controls). When the
// process ends, it records the exit status, shuts the VM down and returns.
// Every step that waits on the guest has the agent's deadlines; waiting
// for start has none (a created container waits for its caller, as runc's
// does).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "runtime/jail/jail.h"
#include "runtime/oci/container_state.h"
#include "runtime/oci/plan.h"

namespace husk::oci {

struct KeeperOptions {
  std::string id;
  std::string state_root;  // husk-oci's --root
  ContainerPlan plan;
  std::string image;       // the root disk image (rootfs_image.h)
  std::string kernel;
  std::string initramfs;
  std::optional<jail::JailSpec> jail;
  std::chrono::milliseconds boot_timeout{60'000};
  // Written once: "ok\n" when the container is created, else "error
  // <why>\n"; then closed. The reader stops at the newline: the VMM
  // process, forked before, holds a copy of the fd for as long as it lives.
  int ready_fd = -1;
  // The process's stdio: the keeper's own, or the console's slave for all
  // three (terminal).
  int stdin_fd = 0;
  int stdout_fd = 1;
  int stderr_fd = 2;
  bool terminal = false;
  // Start without waiting for a start request (`husk-oci run`).
  bool start_at_once = false;
};

// How the keeper should end: exit with `status`, or, when `signal` is set,
// die by that signal (status is then 128 + signal).
struct KeeperEnd {
  int status = 0;
  int signal = 0;
};

[[nodiscard]] KeeperEnd run_keeper(const KeeperOptions& options);

// Ends the calling process as `end` says (raising the signal with its
// default action, so a waiting parent sees WIFSIGNALED).
[[noreturn]] void exit_as(const KeeperEnd& end);

}  // namespace husk::oci
