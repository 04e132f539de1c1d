// VmNetwork: one VM's network from a job's NetworkSpec: the backend
// started (passt, or a tap device), the virtio-net device's configuration
// (its fd, MAC, filter and limits: vmm::NetConfig) and what the guest
// agent must set up inside (address, route, resolver, /etc/hosts).
// VmSession owns it for the VM's lifetime; its destructor stops passt or
// closes the tap (which the kernel then removes). Nothing outlives it, and
// nothing outlives husk either: passt runs in one-off mode and exits when
// the VMM process (which holds the other end) is gone, a tap disappears
// with its last fd.
// Addressing: passt gives the guest 10.0.2.15/24, gateway 10.0.2.2 (the
// host's loopback through passt: host.husk.internal) and as resolver the
// job's first `dns`, else the host's first non-loopback resolver, else
// 10.0.2.3 (passt forwards it to the host's loopback resolver). A tap gets a random /30 in
// 100.96.0.0/12: the host side .1 (host.husk.internal, the gateway), the
// guest .2, and the host's first non-loopback resolver from
// /etc/resolv.conf.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/net/network_spec.h"
#include "runtime/vmm/vm_config.h"

namespace husk::net {

class Passt;
class TapDevice;

// The name under which the guest reaches the host (where the job allows it).
inline constexpr const char* kHostAlias = "host.husk.internal";

// What the guest agent configures inside the VM.
struct GuestNetwork {
  std::array<uint8_t, 6> mac{};
  std::string address;            // "10.0.2.15"
  uint8_t prefix = 24;
  std::string gateway;            // default route
  uint32_t mtu = 1500;
  std::vector<std::string> nameservers;
  std::vector<std::pair<std::string, std::string>> hosts;  // {address, name}
};

class VmNetwork {
 public:
  // Starts the backend. spec.mode must not be kNone (no network: no VmNetwork).
  [[nodiscard]] static Result<std::unique_ptr<VmNetwork>> start(const NetworkSpec& spec);
  ~VmNetwork();
  VmNetwork(const VmNetwork&) = delete;
  VmNetwork& operator=(const VmNetwork&) = delete;

  // The device's configuration; its fd stays owned here.
  [[nodiscard]] vmm::NetConfig device_config() const;
  [[nodiscard]] const GuestNetwork& guest() const { return guest_; }
  // "passt (pid 123)", "tap husk3 (100.97.3.4/30)": for logs.
  [[nodiscard]] const std::string& description() const { return description_; }

 private:
  VmNetwork() = default;
  NetworkSpec spec_;
  GuestNetwork guest_;
  Addressing addressing_{};
  vmm::NetConfig::Link link_kind_ = vmm::NetConfig::Link::kStream;
  UniqueFd link_;
  std::unique_ptr<Passt> passt_;
  std::unique_ptr<TapDevice> tap_;
  std::string description_;
};

}  // namespace husk::net
