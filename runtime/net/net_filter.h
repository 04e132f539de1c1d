// The stateful filter on every Ethernet frame between the guest's
// virtio-net device and the network backend (issue 14: egress allow-list,
// closed by default). The guest is hostile: every frame it sends may be
// truncated, malformed or spoofed, and answers from the outside world are
// untrusted too. Pure code: no device, no sockets, no clock.
//
// What passes:
// - Ethernet II only. ARP out when its sender is the guest (or a 0.0.0.0
//   probe); ARP in always. VLAN tags and other EtherTypes never.
// - IPv6 never, in any mode: the guest kernel has no IPv6, so a frame is
//   dropped without a reply.
// - IPv4 fragments never (reason "fragment"), in any mode: a fragment
//   carries no transport header to check, and the backend reassembles.
// - kNone: nothing. kOpen: every well-formed IPv4 frame from the guest's
//   MAC and address; TCP, UDP and ICMP echo record a flow (other protocols
//   pass out without one, and nothing of theirs comes back).
// - kEgress: TCP, UDP and ICMP echo to a destination an AllowRule covers:
//   a CIDR rule with the port in range (ICMP: any port), the gateway when a
//   host.husk.internal rule covers the port, or an address learned from the
//   answer to an allowed DNS query with the name's rules' ports. DNS queries
//   (UDP to dns_ip:53) pass when the name matches a name or wildcard rule;
//   others get an NXDOMAIN reply. DNS over TCP is not special: it needs a
//   rule for dns_ip. Other outbound ICMP (errors from the guest) is refused.
// - A refused TCP, UDP or ICMP echo packet gets an ICMP "administratively
//   prohibited" reply, so connect() fails at once with EHOSTUNREACH
//   (not for a broadcast, multicast or 0.0.0.0 destination).
//   Refusals for malformed, spoofed, fragment, byte cap or mode kNone get
//   no reply; nor does anything inbound.
// - Inbound: replies to a tracked flow, new traffic to a published guest
//   port (which records a flow), answers to a pending allowed DNS query,
//   ICMP echo replies of a tracked echo, and ICMP errors quoting a tracked
//   flow or coming from a remote with one. Only to guest_ip.
// - Byte cap: a frame that would take bytes_out + bytes_in past max_bytes
//   is dropped, both directions, without a reply.
// Flows do not expire (no clock): see runtime/net/flow_table.h for what
// happens when the table is full.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/net/dns_tracker.h"
#include "runtime/net/egress_policy.h"
#include "runtime/net/flow_table.h"
#include "runtime/net/frame.h"
#include "runtime/net/ip_address.h"
#include "runtime/net/refusals.h"

namespace husk::net {

struct Addressing {  // the guest's network, as husk configured it
  std::array<uint8_t, 6> guest_mac{};
  IpAddress guest_ip{};    // e.g. 10.0.2.15
  uint8_t prefix = 24;
  IpAddress gateway_ip{};  // e.g. 10.0.2.2; also the host (host.husk.internal)
  IpAddress dns_ip{};      // the resolver address the guest uses, e.g. 10.0.2.3
};

struct FilterConfig {
  NetMode mode = NetMode::kNone;
  std::vector<AllowRule> allow;
  std::vector<Publish> publish;
  Addressing addressing{};
  uint64_t max_bytes = 0;    // cap on bytes passed (in + out) per job; 0 = none
  size_t max_flows = 16384;  // connection-tracking entries
  size_t max_learned = 4096; // addresses learned from DNS answers
};

struct Decision {
  bool pass = false;
  std::vector<uint8_t> reply;  // a frame to hand back to the guest (may be empty)
};

struct NetReport {
  uint64_t bytes_out = 0;  // passed
  uint64_t bytes_in = 0;
  uint64_t frames_out = 0;
  uint64_t frames_in = 0;
  uint64_t dropped_out = 0;
  uint64_t dropped_in = 0;
  bool cap_reached = false;
  // At most kMaxRefusalEntries distinct entries, then one aggregated "other"
  // entry; sorted by count, highest first.
  std::vector<Refusal> refused;
};

class NetFilter {
 public:
  explicit NetFilter(FilterConfig config);

  [[nodiscard]] Decision outbound(std::span<const uint8_t> frame);  // guest -> backend
  [[nodiscard]] Decision inbound(std::span<const uint8_t> frame);   // backend -> guest
  [[nodiscard]] NetReport report() const;

 private:
  enum class Direction { kOut, kIn };

  Decision pass(Direction direction, size_t length);
  Decision refuse(Direction direction, std::string_view protocol, std::string destination, uint16_t port,
                  std::string_view reason, std::vector<uint8_t> reply = {});
  [[nodiscard]] bool over_cap(size_t length) const;

  Decision outbound_arp(const EthernetView& eth, size_t length);
  Decision outbound_ipv4(const EthernetView& eth, size_t length);
  Decision outbound_transport(const EthernetView& eth, const Ipv4View& ip, const TransportView& t, size_t length);
  Decision outbound_dns(const EthernetView& eth, const TransportView& udp, size_t length);
  Decision inbound_ipv4(const EthernetView& eth, size_t length);
  Decision inbound_icmp(const Ipv4View& ip, const TransportView& icmp, size_t length);

  [[nodiscard]] bool policy_allows(const IpAddress& destination, std::optional<uint16_t> port) const;
  [[nodiscard]] std::vector<PortRange> name_ports(std::string_view name) const;
  [[nodiscard]] bool published(Protocol protocol, uint16_t guest_port) const;

  FilterConfig config_;
  FlowTable flows_;
  DnsTracker dns_;
  RefusalTally refusals_;
  NetReport counters_{};  // all but `refused`
};

}  // namespace husk::net
