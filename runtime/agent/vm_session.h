// VmSession: a VM with the guest agent, ready for requests. start() has
// the VM built and run by a VMM process (runtime/vmm/vmm_process.h), jailed
// when the options say so, with a vsock device whose socket lives in a
// private directory (the jail's folder), and connects to the agent
// (retrying while the guest boots, all within boot_timeout). finish() asks the agent to shut
// the guest down and waits for the VM to stop, forcing it after a grace
// period, or at once when the agent does not answer. Every wait on the
// guest has a deadline (AgentClient). The destructor always leaves
// nothing behind: VM stopped, VMM process reaped, directory gone.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "runtime/agent/agent_client.h"
#include "runtime/common/private_dir.h"
#include "runtime/jail/jail.h"
#include "runtime/net/network_spec.h"
#include "runtime/net/vm_network.h"
#include "runtime/vmm/vmm_process.h"
#include "runtime/vmm/vm_config.h"

namespace husk::agent {

// A snapshot to restore the VM from instead of booting it (its folder's
// state and memory files: runtime/snapshot/).
struct RestoreSource {
  std::string state_path;
  std::string memory_path;
};

struct SessionOptions {
  // Restore the VM from this snapshot (its configuration must be the one
  // the snapshot was made with; the VMM refuses it otherwise).
  std::optional<RestoreSource> restore;
  uint32_t agent_port = 52;
  // From start() to the agent's answer to Hello, every retry and every
  // wait included (a guest that accepts and then stalls or drips its
  // answer is held to it too).
  std::chrono::milliseconds boot_timeout{120'000};
  // The agent's call timeout once it is up (AgentClient::call_timeout()).
  std::chrono::milliseconds call_timeout = AgentClient::kDefaultCallTimeout;
  // Where the guest console goes; empty: a file in the private directory.
  std::string console_path;
  // Run the VMM process in this jail; its root is set here (the session's
  // private directory).
  std::optional<jail::JailSpec> jail;
  // Once the VMM process is forked, the calling thread enters the seccomp
  // class "main" (husk's CLI does; tests that go on forking do not).
  bool confine_caller = false;
  // A network device, its backend started here (runtime/net/vm_network.h)
  // and the guest's interface configured by the agent before start()
  // returns. Unset: no network device, only the guest's loopback.
  std::optional<net::NetworkSpec> network;
  // The initramfs is the stock one, whose /sbin/husk-agent the kernel can
  // start as PID 1 (rdinit=) when nothing else asks for /init. Off for an
  // initramfs of the caller's: its own /init runs, as it always did.
  bool agent_as_init = true;
};

class VmSession {
 public:
  // `config.vsock` and (unless options say) the console are set here.
  static Result<std::unique_ptr<VmSession>> start(vmm::VmConfig config, const SessionOptions& options);
  ~VmSession();
  VmSession(const VmSession&) = delete;
  VmSession& operator=(const VmSession&) = delete;

  [[nodiscard]] AgentClient& agent() { return *agent_; }
  // Time from start() to the agent's hello.
  [[nodiscard]] std::chrono::milliseconds boot_time() const { return boot_time_; }
  [[nodiscard]] const std::string& console_path() const { return console_path_; }
  // The vsock device's Unix socket (Firecracker's scheme: CONNECT <port>),
  // for host clients of other guest services, or of the agent by hand.
  [[nodiscard]] const std::string& vsock_path() const { return vsock_path_; }
  // The last `lines` lines of the guest console (for error reports).
  [[nodiscard]] std::string console_tail(size_t lines) const;

  // Shuts the guest down and returns why the VM stopped: the agent's
  // Shutdown (within its call timeout), then up to `grace` for the guest
  // to reset, then the VM is stopped. When the agent cannot be asked or
  // does not answer, the VM is stopped at once and shutdown_failure() says why.
  [[nodiscard]] Result<vmm::VmExit> finish(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Why the agent did not shut the guest down in finish(); empty when it
  // did, or when the VM had stopped already.
  [[nodiscard]] const std::string& shutdown_failure() const { return shutdown_failure_; }
  // Stops the VM at once (agent lost, deadline).
  void kill(const std::string& why);
  [[nodiscard]] bool vm_stopped() const { return vmm_->stopped(); }
  // The VM's build times (CLOCK_MONOTONIC); its first run and stop too once
  // it has stopped.
  [[nodiscard]] vmm::BootTimeline timeline() const { return vmm_->timeline(); }
  // Whether the VM was restored from a snapshot rather than booted.
  [[nodiscard]] bool restored() const { return restored_; }
  // The VMM process (for tests: its pid).
  [[nodiscard]] vmm::VmmProcess& vmm() { return *vmm_; }

 private:
  VmSession(PrivateDir dir, std::unique_ptr<vmm::VmmProcess> vmm) : dir_(std::move(dir)), vmm_(std::move(vmm)) {}
  [[nodiscard]] Result<vmm::VmExit> join_vm();

  PrivateDir dir_;
  // Before vmm_: destroyed after the VMM process is gone (passt stopped,
  // the tap closed, once nothing uses them).
  std::unique_ptr<net::VmNetwork> network_;
  std::unique_ptr<vmm::VmmProcess> vmm_;
  std::optional<AgentClient> agent_;
  std::chrono::milliseconds boot_time_{0};
  std::string console_path_;
  std::string vsock_path_;
  std::string shutdown_failure_;
  bool restored_ = false;
};

}  // namespace husk::agent
