// VmmProcess: a VM run in a process of its own, the VMM process, forked
// from husk and, when asked, jailed (runtime/jail/jail.h). husk keeps the
// job's files and the agent conversation; the VMM process holds only the
// VM: open (kernel, images, /dev/kvm, its vsock socket, the console file),
// then drop (the jail's privileges, then every thread's seccomp filter),
// then run. The two talk over one socket pair (vmm_channel.h); the VMM
// process stops its VM when husk asks, when husk forwards a signal, and
// when husk goes away (end of the channel, and PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/jail/jail.h"
#include "runtime/vmm/exit_reason.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/vmm_channel.h"
#include "runtime/vmm/vm_config.h"

namespace husk::vmm {

// Compiles the filters of every thread class a VM starts, then makes the
// calling thread the VM's control thread under the "vmm" filter. Given to
// Machine::set_control_filter, which calls it once the VM's other threads
// have started (the VMM process does; so does `husk boot`, whose main
// thread runs the VM).
[[nodiscard]] Result<void> confine_control_thread();

struct VmmProcessOptions {
  // Jailed when set: its root is the folder that holds config.vsock's
  // socket; the kernel, initrd, disks and /dev/kvm are bound into it.
  std::optional<jail::JailSpec> jail;
  // From the fork to the VMM's word that the VM is built.
  std::chrono::milliseconds build_timeout{30'000};
  // For tests: runs in the VMM process once the VM is built, before the
  // control thread's filter (e.g. puts a test's fd on a device's thread).
  std::function<void(Machine&)> before_run;
};

class VmmProcess {
 public:
  // Forks the VMM process and waits until it has built the VM (or failed
  // to: its error comes back here). The calling process must be
  // single-threaded. config.console_path is created here, by husk.
  [[nodiscard]] static Result<std::unique_ptr<VmmProcess>> start(VmConfig config, const VmmProcessOptions& options);
  // Stops the VM if it still runs and reaps the process.
  ~VmmProcess();
  VmmProcess(const VmmProcess&) = delete;
  VmmProcess& operator=(const VmmProcess&) = delete;

  // Whether the VM has stopped (the VMM said so, or died). Never blocks.
  [[nodiscard]] bool stopped();
  // Asks the VM to stop; wait() then returns `exit` unless it stopped first.
  void request_stop(const VmExit& exit);
  // Asks for every vCPU's state in the log (SIGQUIT's dump).
  void request_dump();
  // Has the running VM write its snapshot into config.save_to's files
  // (paused meanwhile; it runs on after). Returns the VMM's line on what
  // it wrote, or why it could not, within `timeout`.
  [[nodiscard]] Result<std::string> snapshot(std::chrono::milliseconds timeout);
  // Waits for the VM to stop and the process to end; returns why it stopped.
  [[nodiscard]] Result<VmExit> wait();
  // Build times at start; the whole timeline once stopped.
  [[nodiscard]] BootTimeline timeline() const;
  // The network's counts and refusals, as the VMM sent them when its VM
  // stopped (after wait()); none without a network or if it never came.
  [[nodiscard]] std::optional<net::NetReport> net_report() const;
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  VmmProcess(pid_t pid, UniqueFd channel, bool jailed) : pid_(pid), channel_(std::move(channel)), jailed_(jailed) {}
  // Reads what the VMM sent; with `block`, until the VM's end. Call with mutex_.
  void pump(bool block);
  // The VMM process is gone: reaps it and, without its kExit, says why.
  void reap();

  pid_t pid_;
  UniqueFd channel_;
  bool jailed_;
  mutable std::mutex mutex_;
  std::optional<VmExit> exit_;
  std::string violation_;  // a seccomp report line the VMM sent before it died
  std::optional<ChannelMessage> snapshot_reply_;
  BootTimeline timeline_{};
  std::optional<net::NetReport> net_report_;
  bool reaped_ = false;
};

}  // namespace husk::vmm
