// VmSession: a VM with the guest agent, ready for requests. start() builds
// the VM with a vsock device whose socket lives in a private directory,
// runs it on its own thread, and connects to the agent (retrying while the
// guest boots, all within boot_timeout). finish() asks the agent to shut
// the guest down and waits for the VM to stop, forcing it after a grace
// period, or at once when the agent does not answer. Every wait on the
// guest has a deadline (AgentClient). The destructor always leaves
// nothing behind: VM stopped, thread joined, directory gone.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "runtime/agent/agent_client.h"
#include "runtime/common/joining_thread.h"
#include "runtime/common/private_dir.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/vm_config.h"

namespace husk::agent {

struct SessionOptions {
  uint32_t agent_port = 52;
  // From start() to the agent's answer to Hello, every retry and every
  // wait included (a guest that accepts and then stalls or drips its
  // answer is held to it too).
  std::chrono::milliseconds boot_timeout{120'000};
  // The agent's call timeout once it is up (AgentClient::call_timeout()).
  std::chrono::milliseconds call_timeout = AgentClient::kDefaultCallTimeout;
  // Where the guest console goes; empty: a file in the private directory.
  std::string console_path;
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
  [[nodiscard]] bool vm_stopped() const { return machine_->stopped(); }
  // The VM's build and first-run times (CLOCK_MONOTONIC).
  [[nodiscard]] vmm::BootTimeline timeline() const { return machine_->timeline(); }

 private:
  VmSession(PrivateDir dir, std::unique_ptr<vmm::Machine> machine)
      : dir_(std::move(dir)), machine_(std::move(machine)) {}
  [[nodiscard]] Result<vmm::VmExit> join_vm();

  PrivateDir dir_;
  std::unique_ptr<vmm::Machine> machine_;
  std::optional<AgentClient> agent_;
  // agent_'s socket once connected, for the VM thread (agent_ outlives it).
  std::atomic<int> agent_fd_{-1};
  Result<vmm::VmExit> vm_result_ = fail("the VM has not stopped");
  JoiningThread vm_thread_;
  std::chrono::milliseconds boot_time_{0};
  std::string console_path_;
  std::string vsock_path_;
  std::string shutdown_failure_;
  bool joined_ = false;
};

}  // namespace husk::agent
