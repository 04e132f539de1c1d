// TapDevice: a tap interface for one VM (needs CAP_NET_ADMIN).
//
// Non-persistent: the kernel removes the interface when its last fd closes,
// so nothing is left behind on any exit path, SIGKILL included, as long as
// every copy of the fd (duplicate() for the VMM process) goes with its
// owner. The host side is configured with ioctls on an AF_INET socket
// (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFMTU, SIOCSIFFLAGS), no `ip` command.
// Documentation/networking/tuntap.rst.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::net {

struct TapOptions {
  std::string name_template = "husk%d";  // the kernel picks the number
  std::string host_address;              // e.g. "10.200.0.1"; empty: no address
  uint8_t prefix = 30;
  uint32_t mtu = 1500;
};

class TapDevice {
 public:
  // Opens /dev/net/tun, TUNSETIFF IFF_TAP | IFF_NO_PI, sets address,
  // netmask and MTU and brings the interface up. Errors name the step, and
  // say that a tap needs root (CAP_NET_ADMIN) where the kernel says EPERM.
  [[nodiscard]] static Result<TapDevice> create(const TapOptions& options);

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] int fd() const { return fd_.get(); }
  // A close-on-exec copy of the fd, for the VMM process.
  [[nodiscard]] Result<UniqueFd> duplicate() const;

 private:
  TapDevice(std::string name, UniqueFd fd) : name_(std::move(name)), fd_(std::move(fd)) {}
  std::string name_;
  UniqueFd fd_;
};

}  // namespace husk::net
