// ConfigureNetwork's interface steps and the loopback interface (network.h).
#include "guest-agent/src/network.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "guest-agent/protocol/network.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

namespace proto = agent::proto;

namespace {

sockaddr to_sockaddr(uint32_t addr) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(addr);
  // sockaddr_in and sockaddr are the same size; the kernel reads the
  // generic one as sockaddr_in by its family.
  sockaddr out{};
  static_assert(sizeof(in) == sizeof(out));
  std::memcpy(&out, &in, sizeof(in));
  return out;
}

ifreq request_for(const std::string& name) {
  ifreq ifr{};
  // Names come from if_nameindex (or are "lo"), under IFNAMSIZ with the NUL.
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return ifr;
}

// Address, netmask and IFF_UP on `name`.
StepError address_and_up(int sock, const std::string& name, uint32_t addr, uint8_t prefix_len) {
  const std::string cidr = proto::ipv4_text(addr) + "/" + std::to_string(prefix_len);
  ifreq ifr = request_for(name);
  ifr.ifr_addr = to_sockaddr(addr);
  if (::ioctl(sock, SIOCSIFADDR, &ifr) != 0) return {errno, "SIOCSIFADDR " + name + " " + cidr};
  // prefix_len is 1 to 32 (network_config_error), so the shift is 0 to 31.
  ifr = request_for(name);
  ifr.ifr_netmask = to_sockaddr(0xffffffffu << (32 - prefix_len));
  if (::ioctl(sock, SIOCSIFNETMASK, &ifr) != 0) return {errno, "SIOCSIFNETMASK " + name + " " + cidr};
  ifr = request_for(name);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return {errno, "SIOCGIFFLAGS " + name};
  // IFF_RUNNING is the kernel's to report (carrier), not ours to set.
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) return {errno, "SIOCSIFFLAGS " + name + " up"};
  return {};
}

// The Ethernet interface whose hardware address is `mac`.
StepError find_interface(int sock, const std::array<uint8_t, 6>& mac, std::string& name) {
  struct if_nameindex* list = ::if_nameindex();
  if (list == nullptr) return {errno, "if_nameindex"};
  std::string seen;
  for (const struct if_nameindex* i = list; i->if_index != 0 && i->if_name != nullptr; ++i) {
    ifreq ifr = request_for(i->if_name);
    if (::ioctl(sock, SIOCGIFHWADDR, &ifr) != 0) continue;
    seen += std::string(seen.empty() ? "" : ", ") + i->if_name;
    if (ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER && std::memcmp(ifr.ifr_hwaddr.sa_data, mac.data(), 6) == 0) {
      name = i->if_name;
      break;
    }
  }
  ::if_freenameindex(list);
  if (name.empty()) return {ENODEV, "no network interface has MAC " + proto::mac_text(mac) + " (there are: " + seen + ")"};
  return {};
}

}  // namespace

StepError bring_up_loopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return {errno, "socket(AF_INET)"};
  return address_and_up(sock.get(), "lo", INADDR_LOOPBACK, 8);
}

StepError configure_interface(const proto::ConfigureNetwork& m) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return {errno, "socket(AF_INET)"};
  std::string name;
  if (StepError e = find_interface(sock.get(), m.mac, name); e.err != 0) return e;
  if (m.mtu != 0) {
    ifreq ifr = request_for(name);
    ifr.ifr_mtu = static_cast<int>(m.mtu);  // at most 65535 (network_config_error)
    if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) != 0) {
      return {errno, "SIOCSIFMTU " + name + " " + std::to_string(m.mtu)};
    }
  }
  if (StepError e = address_and_up(sock.get(), name, m.address, m.prefix_len); e.err != 0) return e;
  if (m.gateway == 0) return {};
  rtentry rt{};
  rt.rt_dst = to_sockaddr(0);
  rt.rt_genmask = to_sockaddr(0);
  rt.rt_gateway = to_sockaddr(m.gateway);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  // rt_dev is a char* the kernel only reads; `name` outlives the ioctl.
  rt.rt_dev = name.data();
  if (::ioctl(sock.get(), SIOCADDRT, &rt) != 0 && errno != EEXIST) {
    return {errno, "SIOCADDRT default via " + proto::ipv4_text(m.gateway) + " dev " + name};
  }
  return {};
}

// A gratuitous ARP (RFC 5227's announcement): the interface's first frame.
// A statically configured guest sends nothing until it needs to, and passt
// learns the guest's MAC and address only from its frames: a connection to
// a published port would go to an unknown MAC (and be dropped by the
// guest's stack) until then. A bridge's switches learn it the same way.
StepError announce(const std::string& name, const std::array<uint8_t, 6>& mac, uint32_t addr) {
  UniqueFd sock(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (!sock) return {errno, "socket(AF_PACKET) for the ARP announcement"};
  struct {
    uint16_t htype, ptype;
    uint8_t hlen, plen;
    uint16_t op;
    uint8_t sha[6], spa[4], tha[6], tpa[4];
  } __attribute__((packed)) arp{};
  arp.htype = htons(ARPHRD_ETHER);
  arp.ptype = htons(ETH_P_IP);
  arp.hlen = 6;
  arp.plen = 4;
  arp.op = htons(ARPOP_REQUEST);
  const uint32_t net_addr = htonl(addr);
  std::memcpy(arp.sha, mac.data(), 6);
  std::memcpy(arp.spa, &net_addr, 4);
  std::memcpy(arp.tpa, &net_addr, 4);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = static_cast<int>(::if_nametoindex(name.c_str()));
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  if (::sendto(sock.get(), &arp, sizeof(arp), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) {
    return {errno, "the ARP announcement on " + name};
  }
  return {};
}

StepError configure_network(const proto::ConfigureNetwork& m) {
  if (StepError e = configure_interface(m); e.err != 0) return e;
  std::string name;
  {
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return {errno, "socket(AF_INET)"};
    if (StepError e = find_interface(sock.get(), m.mac, name); e.err != 0) return e;
  }
  if (StepError e = announce(name, m.mac, m.address); e.err != 0) return e;
  return write_resolver_files(kEtcDir, kNetworkFallbackDir, m);
}

}  // namespace husk::guest
