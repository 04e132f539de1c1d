#include "runtime/agent/vm_session.h"

#include <arpa/inet.h>
#include <fcntl.h>

#include <sys/socket.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "seccomp/filter.h"

namespace husk::agent {

namespace {

uint32_t ipv4_number(const std::string& text) {
  in_addr a{};
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return 0;
  return ntohl(a.s_addr);
}

// The guest side of the VM's network, set up by the agent before any job.
Result<void> configure_guest_network(AgentClient& client, const net::GuestNetwork& guest) {
  proto::ConfigureNetwork m;
  m.mac = guest.mac;
  m.address = ipv4_number(guest.address);
  m.prefix_len = guest.prefix;
  m.gateway = ipv4_number(guest.gateway);
  m.mtu = guest.mtu;
  m.nameservers = guest.nameservers;
  for (const auto& [address, name] : guest.hosts) m.hosts.push_back(proto::HostEntry{address, name});
  return client.configure_network(m);
}
using Clock = std::chrono::steady_clock;
// The vsock CONNECT handshake of one attempt (husk's own device answers it
// once the guest's kernel accepts; only a guest that is not up yet is slow).
constexpr std::chrono::milliseconds kConnectTimeout{2000};
}

Result<std::unique_ptr<VmSession>> VmSession::start(vmm::VmConfig config, const SessionOptions& options) {
  const auto started = Clock::now();
  HUSK_TRY_ASSIGN(PrivateDir dir, PrivateDir::create("husk-vm"));
  config.vsock = vmm::VsockConfig{dir.file("vsock.sock"), 3};
  const std::string console = options.console_path.empty() ? dir.file("console.log") : options.console_path;
  config.console_path = console;
  config.console_input_fd = -1;
  // The initramfs's /init starts the agent only when asked (a plain boot
  // prints its marker and resets); kernel arguments go before any " -- ".
  auto [kernel_args, init_args] = vmm::split_init_args(config.cmdline);
  const auto has_arg = [&](const char* prefix) {
    return (" " + kernel_args).find(std::string(" ") + prefix) != std::string::npos;
  };
  if (!has_arg("husk.agent")) kernel_args += " husk.agent=1";
  // With the stock initramfs and without a root disk, test mode, init of
  // the caller's choosing or init arguments, the kernel starts the agent as
  // PID 1 itself: no shell runs first (about 0.1 s of a nested boot). The
  // agent mounts what /init would have and prints the same ready marker.
  if (options.agent_as_init && init_args.empty() && !has_arg("husk.root=") && !has_arg("husk.test=") &&
      !has_arg("rdinit=") && !has_arg("init=")) {
    kernel_args += " rdinit=/sbin/husk-agent";
  }
  config.cmdline = kernel_args + (init_args.empty() ? "" : " " + init_args);
  vmm::VmmProcessOptions vmm_options;
  if (options.jail) {
    vmm_options.jail = options.jail;
    vmm_options.jail->root = dir.path();
  }
  // A restore hands the VMM process the snapshot's files, open.
  UniqueFd restore_state, restore_memory;
  if (options.restore) {
    restore_state.reset(::open(options.restore->state_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!restore_state) return fail_errno("open the snapshot's state file " + options.restore->state_path);
    restore_memory.reset(::open(options.restore->memory_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!restore_memory) return fail_errno("open the snapshot's memory file " + options.restore->memory_path);
    config.restore_from = vmm::SnapshotFds{restore_state.get(), restore_memory.get()};
  }
  std::unique_ptr<net::VmNetwork> network;
  if (options.network && options.network->mode != net::NetMode::kNone) {
    auto started_network = net::VmNetwork::start(*options.network);
    if (!started_network) return wrap("the network", started_network.error());
    network = std::move(*started_network);
    config.net = network->device_config();
  }
  HUSK_TRY_ASSIGN(std::unique_ptr<vmm::VmmProcess> vmm, vmm::VmmProcess::start(config, vmm_options));
  restore_state.reset();
  restore_memory.reset();
  std::unique_ptr<VmSession> session(new VmSession(std::move(dir), std::move(vmm)));
  session->network_ = std::move(network);
  session->console_path_ = console;
  session->restored_ = options.restore.has_value();
  session->vsock_path_ = config.vsock->uds_path;
  VmSession* s = session.get();
  if (options.confine_caller) HUSK_TRY(seccomp::enter(seccomp::ThreadClass::kMain));

  // The agent listens once the guest has booted; until then the vsock
  // device refuses the CONNECT, and we try again. Every attempt's waits end
  // by the boot deadline, so a guest that accepts and then stalls or drips
  // its Hello cannot stretch boot_timeout.
  const Deadline deadline = Deadline::at(started + options.boot_timeout);
  Error last{0, "the agent never answered"};
  while (!deadline.expired()) {
    if (s->vmm_->stopped()) {
      HUSK_TRY_ASSIGN(vmm::VmExit exit, s->join_vm());
      // The console says why (an initramfs without the agent, a panic).
      std::string last_lines = s->console_tail(6);
      if (!last_lines.empty()) last_lines.pop_back();  // its last newline
      return fail(fmt::format("the VM stopped before its agent answered ({}: {}){}{}",
                              vmm::exit_reason_name(exit.reason), exit.detail,
                              last_lines.empty() ? "" : "; last console lines:\n", last_lines));
    }
    auto client = AgentClient::connect_vsock_uds(config.vsock->uds_path, options.agent_port,
                                                 std::min(kConnectTimeout, deadline.left()));
    spdlog::debug("agent connect after {} ms: {}",
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count(),
                  client ? "connected" : client.error().message);
    if (client) {
      client->set_call_timeout(std::min(options.call_timeout, deadline.left()));
      auto hello = client->hello();
      if (hello && hello->minor < proto::kVersionMinor) {
        // Each minor so far changed a message's layout: an older agent (one
        // baked into a root disk, say) would misread every request.
        s->kill("the guest agent is too old");
        return fail(fmt::format("the guest's agent speaks protocol {}.{}, this husk needs {}.{}: the agent in the "
                                "guest image is older than husk; rebuild the image (`make guest`, "
                                "`make guest-rootfs-debian`)",
                                hello->major, hello->minor, proto::kVersionMajor, proto::kVersionMinor));
      }
      spdlog::debug("agent hello after {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
      if (hello) {
        // Before any job: VMs restored from one snapshot share the guest
        // kernel's random state until it is reseeded with this host's.
        if (auto reseeded = client->reseed(); !reseeded) {
          s->kill("the guest's random generator was not reseeded");
          return wrap("the guest agent's Reseed", reseeded.error());
        }
        if (s->network_) {
          if (auto configured = configure_guest_network(*client, s->network_->guest()); !configured) {
            s->kill("the guest's network was not configured");
            return wrap("the guest's network", configured.error());
          }
        }
        client->set_call_timeout(options.call_timeout);
        s->agent_.emplace(std::move(*client));
        s->boot_time_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
        return session;
      }
      last = hello.error();
    } else {
      last = client.error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s->kill("the agent did not answer in time");
  return Unexpected(Error{ETIMEDOUT, fmt::format("the guest agent did not answer within boot_timeout ({} ms): {}",
                                                 options.boot_timeout.count(), last.message)});
}

// The VmmProcess's destructor stops the VM and reaps the process.
VmSession::~VmSession() = default;

Result<vmm::VmExit> VmSession::join_vm() { return vmm_->wait(); }

void VmSession::kill(const std::string& why) { vmm_->request_stop(vmm::VmExit{vmm::ExitReason::kHostStop, why, -1}); }

Result<vmm::VmExit> VmSession::finish(std::chrono::milliseconds grace) {
  if (agent_) {
    // The agent syncs and reboots; with reboot=k that resets the VM. The
    // request has the agent's call deadline.
    auto down = agent_->shutdown();
    // The agent waits for this hang-up before it resets the VM, so that its
    // Ack is not lost in the guest's queue.
    ::shutdown(agent_->fd(), SHUT_RDWR);
    if (!down && !vmm_->stopped()) {
      // Not asked, or it did not answer: waiting for a reset that nobody
      // asked for would only add the grace period.
      shutdown_failure_ = down.error().message;
      kill("the guest agent did not shut the guest down: " + shutdown_failure_);
    }
  }
  const auto deadline = Clock::now() + grace;
  while (!vmm_->stopped() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!vmm_->stopped()) kill("the guest did not shut down in time");
  return join_vm();
}

std::string VmSession::console_tail(size_t lines) const {
  // Only the file's last 64 KiB: the guest decides how big the console is.
  constexpr std::streamoff kTailBytes = 64 * 1024;
  std::ifstream in(console_path_, std::ios::binary | std::ios::ate);
  const std::streamoff size = in.tellg();
  if (size > kTailBytes) {
    in.seekg(size - kTailBytes);
    std::string partial;
    std::getline(in, partial);  // the cut line
  } else {
    in.seekg(0);
  }
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += l + "\n";
  return out;
}

}  // namespace husk::agent
