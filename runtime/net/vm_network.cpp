#include "runtime/net/vm_network.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/net/passt.h"
#include "runtime/net/tap.h"

namespace husk::net {

namespace {

// A tap is an Ethernet link like any other (1500, as a bridge expects).
// Through passt the link is a socket: its largest MTU, 65520, means about a
// fortieth of the frames (and of the guest's exits) for a bulk transfer;
// the guest driver then posts page-chained receive buffers (virtio-net's
// big packets), and the filter still sees whole frames.
constexpr uint32_t kTapMtu = 1500;
constexpr uint32_t kPasstMtu = 65520;

// Passt's fixed addressing (vm_network.h).
constexpr const char* kPasstGuest = "10.0.2.15";
constexpr const char* kPasstGateway = "10.0.2.2";
constexpr const char* kPasstDns = "10.0.2.3";
constexpr uint8_t kPasstPrefix = 24;

// Taps: one /30 out of 100.96.0.0/12 (shared address space, RFC 6598).
constexpr uint32_t kTapPool = 0x64600000;  // 100.96.0.0
constexpr uint32_t kTapPoolSubnets = 1u << 18;
constexpr uint8_t kTapPrefix = 30;

std::string ipv4_text(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof(text));
  return text;
}

// A locally administered unicast MAC (02:...), random so that VMs on one
// bridge differ.
std::array<uint8_t, 6> random_mac() {
  std::array<uint8_t, 6> mac{0x02, 0x68, 0x6b, 0, 0, 0};
  if (::getrandom(mac.data() + 3, 3, 0) != 3) mac[5] = 1;
  return mac;
}

// Whether any host interface has an IPv4 address inside [base, base+4).
bool subnet_in_use(uint32_t base) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  bool used = false;
  for (ifaddrs* i = list; i != nullptr && !used; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    used = (a & ~3u) == base;
  }
  ::freeifaddrs(list);
  return used;
}

// The host's first resolver that a tap's guest can reach (not loopback).
std::optional<std::string> host_resolver() {
  std::ifstream in("/etc/resolv.conf");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    in_addr a{};
    if (::inet_pton(AF_INET, value.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) != 127) return value;
  }
  return std::nullopt;
}

Result<IpAddress> address(const std::string& text) {
  auto a = IpAddress::parse(text);
  if (!a) return fail("not an IP address: " + text);
  return *a;
}

}  // namespace

const char* mode_name(NetMode mode) {
  switch (mode) {
    case NetMode::kNone: return "none";
    case NetMode::kEgress: return "egress";
    case NetMode::kOpen: return "open";
  }
  return "?";
}

const char* backend_name(BackendKind backend) {
  return backend == BackendKind::kTap ? "tap" : "passt";
}

VmNetwork::~VmNetwork() = default;

Result<std::unique_ptr<VmNetwork>> VmNetwork::start(const NetworkSpec& spec) {
  if (spec.mode == NetMode::kNone) return fail("a network of mode none has no backend");
  std::unique_ptr<VmNetwork> n(new VmNetwork());
  n->spec_ = spec;
  n->guest_.mac = random_mac();
  n->guest_.mtu = spec.backend == BackendKind::kPasst ? kPasstMtu : kTapMtu;
  std::string dns;
  if (spec.backend == BackendKind::kPasst) {
    PasstOptions options;
    options.guest_address = kPasstGuest;
    options.prefix = kPasstPrefix;
    options.gateway = kPasstGateway;
    options.dns_forward = kPasstDns;
    options.mtu = kPasstMtu;
    options.dns_servers = spec.dns;
    for (const Publish& p : spec.publish) {
      options.forwards.push_back(PasstForward{p.host_port, p.guest_port, p.protocol == Protocol::kUdp});
    }
    HUSK_TRY_ASSIGN(Passt passt, Passt::start(options));
    n->link_ = passt.take_socket();
    n->description_ = fmt::format("passt (pid {})", passt.pid());
    n->passt_ = std::make_unique<Passt>(std::move(passt));
    n->link_kind_ = vmm::NetConfig::Link::kStream;
    n->guest_.address = kPasstGuest;
    n->guest_.prefix = kPasstPrefix;
    n->guest_.gateway = kPasstGateway;
    // The guest asks the upstream resolver itself, through passt like any
    // other UDP flow, so the filter sees the real resolver's address.
    // passt's own DNS forwarding (--dns-forward, 10.0.2.3) serves only a
    // host whose resolvers are all on loopback (127.0.0.53), which the
    // guest cannot reach directly.
    dns = !spec.dns.empty() ? spec.dns.front() : host_resolver().value_or(kPasstDns);
  } else {
    uint32_t start = 0;
    if (::getrandom(&start, sizeof(start), 0) != sizeof(start)) start = static_cast<uint32_t>(::getpid());
    uint32_t base = 0;
    for (uint32_t i = 0; i < 64; ++i) {
      const uint32_t candidate = kTapPool + ((start + i) % kTapPoolSubnets) * 4;
      if (!subnet_in_use(candidate)) {
        base = candidate;
        break;
      }
    }
    if (base == 0) return fail("tap: no free /30 subnet in 100.96.0.0/12");
    TapOptions options;
    options.host_address = ipv4_text(base + 1);
    options.prefix = kTapPrefix;
    options.mtu = kTapMtu;
    HUSK_TRY_ASSIGN(TapDevice tap, TapDevice::create(options));
    HUSK_TRY_ASSIGN(n->link_, tap.duplicate());
    n->description_ = fmt::format("tap {} ({}/{})", tap.name(), options.host_address, kTapPrefix);
    n->tap_ = std::make_unique<TapDevice>(std::move(tap));
    n->link_kind_ = vmm::NetConfig::Link::kTap;
    n->guest_.address = ipv4_text(base + 2);
    n->guest_.prefix = kTapPrefix;
    n->guest_.gateway = options.host_address;
    dns = !spec.dns.empty() ? spec.dns.front() : host_resolver().value_or(options.host_address);
  }
  n->guest_.nameservers = {dns};
  n->guest_.hosts = {{n->guest_.gateway, kHostAlias}};

  n->addressing_.guest_mac = n->guest_.mac;
  HUSK_TRY_ASSIGN(n->addressing_.guest_ip, address(n->guest_.address));
  n->addressing_.prefix = n->guest_.prefix;
  HUSK_TRY_ASSIGN(n->addressing_.gateway_ip, address(n->guest_.gateway));
  HUSK_TRY_ASSIGN(n->addressing_.dns_ip, address(dns));
  spdlog::debug("network: {} {}, guest {}/{}", mode_name(spec.mode), n->description_, n->guest_.address,
                n->guest_.prefix);
  return n;
}

vmm::NetConfig VmNetwork::device_config() const {
  vmm::NetConfig c;
  c.link_fd = link_.get();
  c.link = link_kind_;
  c.device.mac = guest_.mac;
  c.device.mtu = static_cast<uint16_t>(guest_.mtu);
  c.device.filter.mode = spec_.mode;
  c.device.filter.allow = spec_.allow;
  c.device.filter.publish = spec_.publish;
  c.device.filter.addressing = addressing_;
  c.device.filter.max_bytes = spec_.max_bytes;
  c.device.rate = virtio::NetRateLimits{spec_.rate.bytes_per_second, spec_.rate.frames_per_second};
  return c;
}

}  // namespace husk::net
