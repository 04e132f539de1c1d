// Real frames for the packet filter's tests (runtime/net/net_filter.h):
// Ethernet II, IPv4 (checksummed), TCP, UDP, ICMP, ARP and DNS messages,
// built byte by byte the way a guest or a backend would send them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/net/dns_message.h"
#include "runtime/net/frame.h"
#include "runtime/net/net_filter.h"

namespace husk::net::test {

using Frame = std::vector<uint8_t>;

inline const MacAddress kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
inline const MacAddress kGatewayMac{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
inline constexpr uint16_t kGuestPort = 40000;

inline IpAddress ip(std::string_view text) {
  auto a = IpAddress::parse(text);
  REQUIRE(a);
  return *a;
}

inline IpAddress guest_ip() { return ip("10.0.2.15"); }
inline IpAddress gateway_ip() { return ip("10.0.2.2"); }
inline IpAddress dns_ip() { return ip("10.0.2.3"); }

inline FilterConfig config(NetMode mode, std::vector<std::string> rules = {}, std::vector<std::string> publishes = {}) {
  FilterConfig c;
  c.mode = mode;
  c.addressing.guest_mac = kGuestMac;
  c.addressing.guest_ip = guest_ip();
  c.addressing.gateway_ip = gateway_ip();
  c.addressing.dns_ip = dns_ip();
  for (const auto& r : rules) {
    auto rule = parse_allow_rule(r);
    REQUIRE(rule);
    c.allow.push_back(*rule);
  }
  for (const auto& p : publishes) {
    auto publish = parse_publish(p);
    REQUIRE(publish);
    c.publish.push_back(*publish);
  }
  return c;
}

inline void put16(Frame& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}
inline uint16_t get16(const Frame& f, size_t at) { return static_cast<uint16_t>((f[at] << 8) | f[at + 1]); }
inline void append16(Frame& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v));
}

inline Frame ethernet(const MacAddress& src, const MacAddress& dst, uint16_t ethertype, const Frame& payload) {
  Frame f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  append16(f, ethertype);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// An IPv4 packet with a correct header checksum; flags_fragment 0x4000 is DF.
inline Frame ipv4(const IpAddress& src, const IpAddress& dst, uint8_t protocol, const Frame& l4,
                  uint16_t flags_fragment = 0x4000) {
  Frame p(20, 0);
  p[0] = 0x45;
  put16(p, 2, static_cast<uint16_t>(20 + l4.size()));
  put16(p, 4, 0x1234);
  put16(p, 6, flags_fragment);
  p[8] = 64;
  p[9] = protocol;
  std::copy_n(src.bytes.begin(), 4, p.begin() + 12);
  std::copy_n(dst.bytes.begin(), 4, p.begin() + 16);
  put16(p, 10, internet_checksum(p));
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

inline Frame tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  Frame t(20, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  put16(t, 4, 0x0102);  // sequence number, so the quote holds something recognisable
  put16(t, 6, 0x0304);
  t[12] = 5 << 4;
  t[13] = flags;
  put16(t, 14, 64240);
  return t;
}

inline Frame udp(uint16_t sport, uint16_t dport, const Frame& data) {
  Frame u(8, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<uint16_t>(8 + data.size()));
  u.insert(u.end(), data.begin(), data.end());
  return u;
}

inline Frame icmp(uint8_t type, uint8_t code, uint16_t id, const Frame& rest = {}) {
  Frame m(8, 0);
  m[0] = type;
  m[1] = code;
  put16(m, 4, id);
  put16(m, 6, 1);
  m.insert(m.end(), rest.begin(), rest.end());
  put16(m, 2, internet_checksum(m));
  return m;
}

// Guest to `dst` (through the gateway's MAC), and `src` to the guest.
inline Frame out_ip(const IpAddress& dst, uint8_t protocol, const Frame& l4) {
  return ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv4, ipv4(guest_ip(), dst, protocol, l4));
}
inline Frame in_ip(const IpAddress& src, uint8_t protocol, const Frame& l4) {
  return ethernet(kGatewayMac, kGuestMac, kEtherTypeIpv4, ipv4(src, guest_ip(), protocol, l4));
}
inline Frame out_tcp(const IpAddress& dst, uint16_t dport, uint8_t flags = kTcpSyn, uint16_t sport = kGuestPort) {
  return out_ip(dst, kIpProtoTcp, tcp(sport, dport, flags));
}
inline Frame in_tcp(const IpAddress& src, uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn | kTcpAck) {
  return in_ip(src, kIpProtoTcp, tcp(sport, dport, flags));
}
inline Frame out_udp(const IpAddress& dst, uint16_t dport, const Frame& data = {1, 2, 3}, uint16_t sport = kGuestPort) {
  return out_ip(dst, kIpProtoUdp, udp(sport, dport, data));
}
inline Frame in_udp(const IpAddress& src, uint16_t sport, uint16_t dport, const Frame& data = {1, 2, 3}) {
  return in_ip(src, kIpProtoUdp, udp(sport, dport, data));
}

inline Frame arp(const MacAddress& sender_mac, const IpAddress& sender_ip, const IpAddress& target_ip) {
  Frame a;
  append16(a, 1);
  append16(a, kEtherTypeIpv4);
  a.push_back(6);
  a.push_back(4);
  append16(a, 1);  // request
  a.insert(a.end(), sender_mac.begin(), sender_mac.end());
  a.insert(a.end(), sender_ip.bytes.begin(), sender_ip.bytes.begin() + 4);
  a.insert(a.end(), 6, 0);
  a.insert(a.end(), target_ip.bytes.begin(), target_ip.bytes.begin() + 4);
  return ethernet(sender_mac, MacAddress{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, kEtherTypeArp, a);
}

// DNS wire format (RFC 1035 section 4.1), no compression.
inline Frame dns_name(std::string_view name) {
  Frame n;
  size_t start = 0;
  while (start < name.size()) {
    const size_t dot = std::min(name.find('.', start), name.size());
    n.push_back(static_cast<uint8_t>(dot - start));
    n.insert(n.end(), name.begin() + static_cast<ptrdiff_t>(start), name.begin() + static_cast<ptrdiff_t>(dot));
    start = dot + 1;
  }
  n.push_back(0);
  return n;
}

inline Frame dns_query(uint16_t id, std::string_view name, uint16_t type = kDnsTypeA, uint16_t flags = 0x0100) {
  Frame q;
  append16(q, id);
  append16(q, flags);
  append16(q, 1);
  append16(q, 0);
  append16(q, 0);
  append16(q, 0);
  const Frame n = dns_name(name);
  q.insert(q.end(), n.begin(), n.end());
  append16(q, type);
  append16(q, 1);
  return q;
}

struct Rr {
  std::string owner;
  uint16_t type = kDnsTypeA;
  std::string alias;  // CNAME
  IpAddress address{};
};

// A response to dns_query(id, name); the first record's owner, when it is the
// question's name, is written as a compression pointer to the question (0xc00c).
inline Frame dns_answer(uint16_t id, std::string_view name, const std::vector<Rr>& records) {
  Frame a = dns_query(id, name);
  put16(a, 2, 0x8180);
  put16(a, 6, static_cast<uint16_t>(records.size()));
  bool first = true;
  for (const Rr& r : records) {
    if (first && r.owner == name) {
      append16(a, 0xc00c);
    } else {
      const Frame n = dns_name(r.owner);
      a.insert(a.end(), n.begin(), n.end());
    }
    first = false;
    append16(a, r.type);
    append16(a, 1);
    append16(a, 0);
    append16(a, 60);  // TTL
    Frame data;
    if (r.type == kDnsTypeCname) {
      data = dns_name(r.alias);
    } else if (r.address.is_v4()) {
      data.assign(r.address.bytes.begin(), r.address.bytes.begin() + 4);
    } else {
      data.assign(r.address.bytes.begin(), r.address.bytes.end());
    }
    append16(a, static_cast<uint16_t>(data.size()));
    a.insert(a.end(), data.begin(), data.end());
  }
  return a;
}

}  // namespace husk::net::test
