// TapDevice: TUNSETIFF, then the host side's address, netmask, MTU and
// IFF_UP through SIOCSIF* ioctls (see tap.h).
#include "runtime/net/tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace husk::net {

namespace {

// "step: strerror", and why where the kernel refused for want of privilege.
Unexpected step_error(const std::string& step, int err) {
  if (err == EPERM || err == EACCES) {
    return fail_errno(step + " (a tap needs root: CAP_NET_ADMIN)", err);
  }
  return fail_errno(step, err);
}

ifreq request_for(const std::string& name) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), std::min(name.size(), size_t{IFNAMSIZ - 1}));
  return ifr;
}

Result<void> set_ipv4(int sock, const std::string& name, unsigned long request, in_addr_t address,
                      const char* step) {
  ifreq ifr = request_for(name);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = address;
  static_assert(sizeof sin <= sizeof ifr.ifr_addr);
  std::memcpy(&ifr.ifr_addr, &sin, sizeof sin);
  if (::ioctl(sock, request, &ifr) < 0) return step_error(fmt::format("{} on {}", step, name), errno);
  return {};
}

}  // namespace

Result<TapDevice> TapDevice::create(const TapOptions& options) {
  if (options.name_template.empty() || options.name_template.size() >= IFNAMSIZ) {
    return fail(fmt::format("tap name {:?}: 1 to {} characters", options.name_template, IFNAMSIZ - 1));
  }
  in_addr address{};
  if (!options.host_address.empty() && ::inet_pton(AF_INET, options.host_address.c_str(), &address) != 1) {
    return fail(fmt::format("tap host address {:?}: not an IPv4 address", options.host_address));
  }
  if (options.prefix < 1 || options.prefix > 32) return fail(fmt::format("tap prefix /{}: not 1 to 32", options.prefix));
  if (options.mtu < 68 || options.mtu > 65521) return fail(fmt::format("tap MTU {}: not 68 to 65521", options.mtu));

  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun) return step_error("open /dev/net/tun", errno);
  ifreq ifr = request_for(options.name_template);
  // No IFF_VNET_HDR: frames are plain Ethernet, as on the passt link.
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tun.get(), TUNSETIFF, &ifr) < 0) {
    return step_error(fmt::format("TUNSETIFF {}", options.name_template), errno);
  }
  const std::string name(ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ));
  // From here on, an error closes `tun` and the kernel removes the interface.

  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("socket for tap configuration");
  if (!options.host_address.empty()) {
    HUSK_TRY(set_ipv4(sock.get(), name, SIOCSIFADDR, address.s_addr, "SIOCSIFADDR"));
    const in_addr_t mask = options.prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> options.prefix);
    HUSK_TRY(set_ipv4(sock.get(), name, SIOCSIFNETMASK, htonl(mask), "SIOCSIFNETMASK"));
  }
  ifreq mtu = request_for(name);
  mtu.ifr_mtu = static_cast<int>(options.mtu);
  if (::ioctl(sock.get(), SIOCSIFMTU, &mtu) < 0) return step_error(fmt::format("SIOCSIFMTU {} on {}", options.mtu, name), errno);
  ifreq flags = request_for(name);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &flags) < 0) return step_error("SIOCGIFFLAGS on " + name, errno);
  flags.ifr_flags = static_cast<short>(flags.ifr_flags | IFF_UP);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &flags) < 0) return step_error("SIOCSIFFLAGS IFF_UP on " + name, errno);
  return TapDevice(name, std::move(tun));
}

Result<UniqueFd> TapDevice::duplicate() const {
  UniqueFd copy(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) return fail_errno("dup tap fd");
  return copy;
}

}  // namespace husk::net
