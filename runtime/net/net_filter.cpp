#include "runtime/net/net_filter.h"

#include <algorithm>
#include <utility>

namespace husk::net {

namespace {

std::string_view ip_protocol_name(uint8_t protocol) {
  switch (protocol) {
    case kIpProtoTcp: return "tcp";
    case kIpProtoUdp: return "udp";
    case kIpProtoIcmp: return "icmp";
    default: return "other";
  }
}

std::optional<Protocol> transport_protocol(uint8_t protocol) {
  switch (protocol) {
    case kIpProtoTcp: return Protocol::kTcp;
    case kIpProtoUdp: return Protocol::kUdp;
    case kIpProtoIcmp: return Protocol::kIcmp;
    default: return std::nullopt;
  }
}

std::optional<TransportView> parse_transport(Protocol protocol, Bytes payload) {
  switch (protocol) {
    case Protocol::kTcp: return parse_tcp(payload);
    case Protocol::kUdp: return parse_udp(payload);
    case Protocol::kIcmp: return parse_icmp(payload);
  }
  return std::nullopt;
}

bool is_icmp_error(uint8_t type) {
  return type == kIcmpDestUnreachable || type == kIcmpSourceQuench || type == kIcmpTimeExceeded ||
         type == kIcmpParameterProblem;
}

// RFC 1812 section 4.3.2.7: no ICMP error about a packet to a broadcast or
// multicast address (nor to 0.0.0.0), which nobody would answer from.
bool may_answer(const IpAddress& destination, const Addressing& a) {
  const uint32_t d = destination.v4_host_order();
  const uint32_t host_bits = a.prefix >= 32 ? 0 : (a.prefix == 0 ? 0xffffffffu : 0xffffffffu >> a.prefix);
  const bool subnet_broadcast = host_bits != 0 && (d & ~host_bits) == (a.guest_ip.v4_host_order() & ~host_bits) &&
                                (d & host_bits) == host_bits;
  return d != 0 && d != 0xffffffffu && (d >> 28) != 0xe && !subnet_broadcast;
}

bool tcp_closing(Protocol protocol, const TransportView& t) {
  return protocol == Protocol::kTcp && (t.tcp_flags & (kTcpFin | kTcpRst)) != 0;
}

// The flow a packet belongs to, seen from the guest: an outbound packet's
// source port is the guest's; an inbound one's destination port is.
FlowKey flow_key(Protocol protocol, const TransportView& t, const IpAddress& remote, bool outbound) {
  if (protocol == Protocol::kIcmp) return FlowKey{protocol, t.icmp_id, remote, 0};
  return outbound ? FlowKey{protocol, t.source_port, remote, t.destination_port}
                  : FlowKey{protocol, t.destination_port, remote, t.source_port};
}

}  // namespace

NetFilter::NetFilter(FilterConfig config)
    : config_(std::move(config)), flows_(config_.max_flows), dns_(config_.max_learned) {}

bool NetFilter::over_cap(size_t length) const {
  return config_.max_bytes > 0 && counters_.bytes_out + counters_.bytes_in + length > config_.max_bytes;
}

Decision NetFilter::pass(Direction direction, size_t length) {
  if (direction == Direction::kOut) {
    counters_.bytes_out += length;
    ++counters_.frames_out;
  } else {
    counters_.bytes_in += length;
    ++counters_.frames_in;
  }
  return Decision{true, {}};
}

Decision NetFilter::refuse(Direction direction, std::string_view protocol, std::string destination, uint16_t port,
                           std::string_view reason, std::vector<uint8_t> reply) {
  const bool out = direction == Direction::kOut;
  ++(out ? counters_.dropped_out : counters_.dropped_in);
  if (reason == "byte cap") counters_.cap_reached = true;
  refusals_.add(out ? "out" : "in", protocol, std::move(destination), port, reason);
  return Decision{false, std::move(reply)};
}

NetReport NetFilter::report() const {
  NetReport r = counters_;
  r.refused = refusals_.sorted();
  return r;
}

bool NetFilter::policy_allows(const IpAddress& destination, std::optional<uint16_t> port) const {
  const auto covers = [&](const PortRange& range) { return !port || range.contains(*port); };
  for (const AllowRule& rule : config_.allow) {
    if (rule.kind == AllowRule::Kind::kCidr && rule.cidr.contains(destination) && covers(rule.ports)) return true;
    if (rule.kind == AllowRule::Kind::kHostAlias && destination == config_.addressing.gateway_ip &&
        covers(rule.ports)) {
      return true;
    }
  }
  return dns_.allows(destination, port);
}

std::vector<PortRange> NetFilter::name_ports(std::string_view name) const {
  std::vector<PortRange> ports;
  for (const AllowRule& rule : config_.allow) {
    if (name_matches(rule, name)) ports.push_back(rule.ports);
  }
  return ports;
}

bool NetFilter::published(Protocol protocol, uint16_t guest_port) const {
  return std::any_of(config_.publish.begin(), config_.publish.end(),
                     [&](const Publish& p) { return p.protocol == protocol && p.guest_port == guest_port; });
}

Decision NetFilter::outbound(std::span<const uint8_t> frame) {
  if (config_.mode == NetMode::kNone) return refuse(Direction::kOut, "other", "", 0, "not allowed");
  const auto eth = parse_ethernet(frame);
  if (!eth) return refuse(Direction::kOut, "other", "", 0, "malformed");
  if (eth->source != config_.addressing.guest_mac) {
    const std::string_view protocol = eth->ethertype == kEtherTypeArp    ? "arp"
                                      : eth->ethertype == kEtherTypeIpv6 ? "ipv6"
                                                                         : "other";
    return refuse(Direction::kOut, protocol, "", 0, "spoofed source");
  }
  switch (eth->ethertype) {
    case kEtherTypeArp: return outbound_arp(*eth, frame.size());
    case kEtherTypeIpv4: return outbound_ipv4(*eth, frame.size());
    case kEtherTypeIpv6: return refuse(Direction::kOut, "ipv6", "", 0, "not allowed");
    default: return refuse(Direction::kOut, "other", "", 0, "not allowed");
  }
}

Decision NetFilter::outbound_arp(const EthernetView& eth, size_t length) {
  const auto arp = parse_arp(eth.payload);
  if (!arp) return refuse(Direction::kOut, "arp", "", 0, "malformed");
  const Addressing& a = config_.addressing;
  if (arp->sender_mac != a.guest_mac || (arp->sender_ip != a.guest_ip && !arp->sender_ip.is_unspecified())) {
    return refuse(Direction::kOut, "arp", arp->sender_ip.to_string(), 0, "spoofed source");
  }
  if (over_cap(length)) return refuse(Direction::kOut, "arp", arp->target_ip.to_string(), 0, "byte cap");
  return pass(Direction::kOut, length);
}

Decision NetFilter::outbound_ipv4(const EthernetView& eth, size_t length) {
  const auto ip = parse_ipv4(eth.payload);
  if (!ip) return refuse(Direction::kOut, "other", "", 0, "malformed");
  const std::string_view name = ip_protocol_name(ip->protocol);
  if (ip->source != config_.addressing.guest_ip) {
    return refuse(Direction::kOut, name, ip->destination.to_string(), 0, "spoofed source");
  }
  if (ip->fragment) return refuse(Direction::kOut, name, ip->destination.to_string(), 0, "fragment");
  const auto protocol = transport_protocol(ip->protocol);
  if (!protocol) {
    if (config_.mode != NetMode::kOpen) return refuse(Direction::kOut, name, ip->destination.to_string(), 0, "not allowed");
    if (over_cap(length)) return refuse(Direction::kOut, name, ip->destination.to_string(), 0, "byte cap");
    return pass(Direction::kOut, length);
  }
  const auto t = parse_transport(*protocol, ip->payload);
  if (!t) return refuse(Direction::kOut, name, ip->destination.to_string(), 0, "malformed");
  if (*protocol == Protocol::kUdp && ip->destination == config_.addressing.dns_ip &&
      t->destination_port == kDnsPort) {
    return outbound_dns(eth, *t, length);
  }
  return outbound_transport(eth, *ip, *t, length);
}

Decision NetFilter::outbound_transport(const EthernetView& eth, const Ipv4View& ip, const TransportView& t,
                                       size_t length) {
  const Protocol protocol = *transport_protocol(ip.protocol);
  const std::string_view name = protocol_name(protocol);
  const bool icmp = protocol == Protocol::kIcmp;
  const uint16_t port = icmp ? 0 : t.destination_port;
  const std::string destination = ip.destination.to_string();
  if (icmp && t.icmp_type != kIcmpEchoRequest) {
    // ICMP errors and echo replies from the guest start no flow; answering
    // them could loop, so they are refused silently (kOpen lets them out).
    if (config_.mode != NetMode::kOpen) return refuse(Direction::kOut, name, destination, 0, "not allowed");
    if (over_cap(length)) return refuse(Direction::kOut, name, destination, 0, "byte cap");
    return pass(Direction::kOut, length);
  }
  const FlowKey key = flow_key(protocol, t, ip.destination, true);
  // A tracked flow passes whatever the policy says now: it may be a reply of
  // a published service, or go to an address learned long ago and forgotten.
  const bool allowed = flows_.contains(key) || config_.mode == NetMode::kOpen ||
                       policy_allows(ip.destination, icmp ? std::nullopt : std::optional<uint16_t>(port));
  const auto prohibited = [&] {
    if (!may_answer(ip.destination, config_.addressing)) return std::vector<uint8_t>{};
    return build_icmp_prohibited(eth, ip, ip.destination, config_.addressing.guest_ip);
  };
  if (!allowed) return refuse(Direction::kOut, name, destination, port, "not allowed", prohibited());
  if (over_cap(length)) return refuse(Direction::kOut, name, destination, port, "byte cap");
  if (flows_.record(key, tcp_closing(protocol, t)) == FlowTable::Record::kFull) {
    return refuse(Direction::kOut, name, destination, port, "flow table full", prohibited());
  }
  return pass(Direction::kOut, length);
}

Decision NetFilter::outbound_dns(const EthernetView& eth, const TransportView& udp, size_t length) {
  const Addressing& a = config_.addressing;
  const auto query = parse_dns_query(udp.payload);
  if (!query) return refuse(Direction::kOut, "dns", a.dns_ip.to_string(), kDnsPort, "malformed");
  const std::string& name = query->question.name;
  if (config_.mode == NetMode::kOpen) {
    // No pending entry: in kOpen the answer comes back through the flow.
    if (over_cap(length)) return refuse(Direction::kOut, "dns", name, kDnsPort, "byte cap");
    const FlowKey key{Protocol::kUdp, udp.source_port, a.dns_ip, kDnsPort};
    if (flows_.record(key, false) == FlowTable::Record::kFull) {
      return refuse(Direction::kOut, "dns", name, kDnsPort, "flow table full");
    }
    return pass(Direction::kOut, length);
  }
  std::vector<PortRange> ports = name_ports(name);
  if (ports.empty()) {
    // Reply from the resolver's MAC and address as the guest addressed it.
    auto reply = build_udp_frame(eth.destination, eth.source, a.dns_ip, kDnsPort, a.guest_ip, udp.source_port,
                                 build_nxdomain(*query));
    return refuse(Direction::kOut, "dns", name.empty() ? "." : name, kDnsPort, "dns name not allowed",
                  std::move(reply));
  }
  if (over_cap(length)) return refuse(Direction::kOut, "dns", name, kDnsPort, "byte cap");
  dns_.expect(udp.source_port, query->id, name, std::move(ports));
  return pass(Direction::kOut, length);
}

Decision NetFilter::inbound(std::span<const uint8_t> frame) {
  if (config_.mode == NetMode::kNone) return refuse(Direction::kIn, "other", "", 0, "not allowed");
  const auto eth = parse_ethernet(frame);
  if (!eth) return refuse(Direction::kIn, "other", "", 0, "malformed");
  switch (eth->ethertype) {
    case kEtherTypeArp:
      if (!parse_arp(eth->payload)) return refuse(Direction::kIn, "arp", "", 0, "malformed");
      if (over_cap(frame.size())) return refuse(Direction::kIn, "arp", "", 0, "byte cap");
      return pass(Direction::kIn, frame.size());
    case kEtherTypeIpv4: return inbound_ipv4(*eth, frame.size());
    case kEtherTypeIpv6: return refuse(Direction::kIn, "ipv6", "", 0, "not allowed");
    default: return refuse(Direction::kIn, "other", "", 0, "not allowed");
  }
}

Decision NetFilter::inbound_ipv4(const EthernetView& eth, size_t length) {
  const auto ip = parse_ipv4(eth.payload);
  if (!ip) return refuse(Direction::kIn, "other", "", 0, "malformed");
  const std::string_view name = ip_protocol_name(ip->protocol);
  const std::string source = ip->source.to_string();
  if (ip->destination != config_.addressing.guest_ip) return refuse(Direction::kIn, name, source, 0, "wrong destination");
  if (ip->fragment) return refuse(Direction::kIn, name, source, 0, "fragment");
  const auto protocol = transport_protocol(ip->protocol);
  if (!protocol) return refuse(Direction::kIn, name, source, 0, "not published");
  const auto t = parse_transport(*protocol, ip->payload);
  if (!t) return refuse(Direction::kIn, name, source, 0, "malformed");
  if (*protocol == Protocol::kIcmp) return inbound_icmp(*ip, *t, length);

  const uint16_t port = t->destination_port;
  if (*protocol == Protocol::kUdp && ip->source == config_.addressing.dns_ip && t->source_port == kDnsPort) {
    // An answer to a pending query: learn its addresses (the answer is from
    // the outside world, so parse_dns_answer checks every offset).
    const auto answer = parse_dns_answer(t->payload);
    if (answer && over_cap(length)) return refuse(Direction::kIn, "dns", source, port, "byte cap");
    if (answer && dns_.answer(port, *answer)) return pass(Direction::kIn, length);
  }
  const FlowKey key = flow_key(*protocol, *t, ip->source, false);
  if (flows_.contains(key)) {
    if (over_cap(length)) return refuse(Direction::kIn, name, source, port, "byte cap");
    (void)flows_.touch(key, tcp_closing(*protocol, *t));
    return pass(Direction::kIn, length);
  }
  if (!published(*protocol, port)) return refuse(Direction::kIn, name, source, port, "not published");
  if (over_cap(length)) return refuse(Direction::kIn, name, source, port, "byte cap");
  if (flows_.record(key, tcp_closing(*protocol, *t)) == FlowTable::Record::kFull) {
    return refuse(Direction::kIn, name, source, port, "flow table full");
  }
  return pass(Direction::kIn, length);
}

Decision NetFilter::inbound_icmp(const Ipv4View& ip, const TransportView& icmp, size_t length) {
  const std::string source = ip.source.to_string();
  bool tracked = false;
  if (icmp.icmp_type == kIcmpEchoReply) {
    tracked = flows_.contains(FlowKey{Protocol::kIcmp, icmp.icmp_id, ip.source, 0});
  } else if (is_icmp_error(icmp.icmp_type)) {
    // An error about one of the guest's flows: from the remote itself, or
    // from a router on the way that quotes the guest's packet.
    tracked = flows_.has_remote(ip.source);
    const auto quote = parse_icmp_quote(icmp.payload);
    if (!tracked && quote && quote->has_ports && quote->source == config_.addressing.guest_ip) {
      const auto protocol = transport_protocol(quote->protocol);
      if (protocol == Protocol::kIcmp) {
        tracked = flows_.contains(FlowKey{Protocol::kIcmp, quote->icmp_id, quote->destination, 0});
      } else if (protocol) {
        tracked = flows_.contains(FlowKey{*protocol, quote->source_port, quote->destination, quote->destination_port});
      }
    }
  }
  if (!tracked) return refuse(Direction::kIn, "icmp", source, 0, "not published");
  if (over_cap(length)) return refuse(Direction::kIn, "icmp", source, 0, "byte cap");
  return pass(Direction::kIn, length);
}

}  // namespace husk::net
