// Tests for the state of runtime/net/net_filter.h: connection tracking
// (replies, published ports, inbound ICMP, a full table), the byte cap,
// counters and the refusal tally with its cap.
#include <catch2/catch.hpp>

#include "runtime/net/net_filter.h"
#include "tests/unit/net/filter_frames.h"

namespace husk::net {
namespace {

using namespace test;

TEST_CASE("replies to a flow pass; unsolicited traffic is refused, without a reply", "[net][flows]") {
  NetFilter f(config(NetMode::kEgress, {"198.51.100.7:443", "198.51.100.8:5000"}));
  const IpAddress server = ip("198.51.100.7");
  const Decision unsolicited = f.inbound(in_tcp(server, 443, kGuestPort, kTcpSyn));
  CHECK_FALSE(unsolicited.pass);
  CHECK(unsolicited.reply.empty());
  REQUIRE(f.outbound(out_tcp(server, 443)).pass);
  CHECK(f.inbound(in_tcp(server, 443, kGuestPort)).pass);
  CHECK_FALSE(f.inbound(in_tcp(server, 444, kGuestPort)).pass);      // other remote port
  CHECK_FALSE(f.inbound(in_tcp(server, 443, kGuestPort + 1)).pass);  // other guest port
  CHECK_FALSE(f.inbound(in_tcp(ip("198.51.100.9"), 443, kGuestPort)).pass);
  CHECK_FALSE(f.inbound(in_udp(server, 443, kGuestPort)).pass);      // other protocol
  // Addressed to somebody else.
  CHECK_FALSE(f.inbound(ethernet(kGatewayMac, kGuestMac, kEtherTypeIpv4,
                                 ipv4(server, ip("10.0.2.16"), kIpProtoTcp, tcp(443, kGuestPort, kTcpAck))))
                  .pass);
  const NetReport r = f.report();
  CHECK(r.frames_in == 1);
  CHECK(r.dropped_in == 6);
  bool found = false;
  for (const Refusal& x : r.refused) {
    if (x.direction == "in" && x.destination == "198.51.100.7" && x.port == kGuestPort && x.protocol == "tcp") {
      found = true;
      CHECK(x.reason == "not published");
      CHECK(x.count == 2);  // the unsolicited SYN and the reply from the wrong remote port
    }
  }
  CHECK(found);
}

TEST_CASE("a published port accepts connections, and the guest's replies pass", "[net][flows]") {
  NetFilter f(config(NetMode::kEgress, {}, {"8080:80", "5353:53/udp"}));
  const IpAddress client = ip("10.0.2.2");
  CHECK(f.inbound(in_tcp(client, 51000, 80, kTcpSyn)).pass);
  CHECK(f.outbound(out_tcp(client, 51000, kTcpSyn | kTcpAck, 80)).pass);
  CHECK(f.inbound(in_udp(client, 6000, 53)).pass);
  CHECK(f.outbound(out_udp(client, 6000, {1}, 53)).pass);
  CHECK_FALSE(f.inbound(in_tcp(client, 51000, 81, kTcpSyn)).pass);
  CHECK_FALSE(f.inbound(in_udp(client, 6000, 80)).pass);  // 80 is published for tcp only
  // The guest's server cannot reach anywhere else through its flow.
  CHECK_FALSE(f.outbound(out_tcp(client, 51001, kTcpSyn, 80)).pass);
}

TEST_CASE("inbound ICMP passes for echo replies and errors about a flow", "[net][flows]") {
  NetFilter f(config(NetMode::kEgress, {"203.0.113.0/24"}));
  const IpAddress remote = ip("203.0.113.5");
  CHECK_FALSE(f.inbound(in_ip(remote, kIpProtoIcmp, icmp(kIcmpEchoReply, 0, 99))).pass);
  REQUIRE(f.outbound(out_ip(remote, kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 99))).pass);
  CHECK(f.inbound(in_ip(remote, kIpProtoIcmp, icmp(kIcmpEchoReply, 0, 99))).pass);
  CHECK_FALSE(f.inbound(in_ip(remote, kIpProtoIcmp, icmp(kIcmpEchoReply, 0, 98))).pass);
  CHECK_FALSE(f.inbound(in_ip(remote, kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 1))).pass);  // nobody pings the guest

  const IpAddress other = ip("203.0.113.6");
  REQUIRE(f.outbound(out_udp(other, 9000)).pass);
  const Frame sent = ipv4(guest_ip(), other, kIpProtoUdp, udp(kGuestPort, 9000, {1, 2, 3}));
  const IpAddress router = ip("192.0.2.254");
  CHECK(f.inbound(in_ip(router, kIpProtoIcmp, icmp(kIcmpTimeExceeded, 0, 0, sent))).pass);
  const Frame unknown = ipv4(guest_ip(), other, kIpProtoUdp, udp(kGuestPort, 9001, {1, 2, 3}));
  CHECK_FALSE(f.inbound(in_ip(router, kIpProtoIcmp, icmp(kIcmpTimeExceeded, 0, 0, unknown))).pass);
  CHECK_FALSE(f.inbound(in_ip(router, kIpProtoIcmp, icmp(kIcmpTimeExceeded, 0, 0, Frame(10, 0x45)))).pass);
  CHECK(f.inbound(in_ip(other, kIpProtoIcmp, icmp(kIcmpDestUnreachable, 3, 0))).pass);  // from the remote itself
}

TEST_CASE("the byte cap counts both directions and stops both", "[net][cap]") {
  FilterConfig c = config(NetMode::kOpen);
  const Frame out = out_tcp(ip("1.1.1.1"), 443);
  const Frame in = in_tcp(ip("1.1.1.1"), 443, kGuestPort);
  c.max_bytes = 2 * out.size() + in.size();
  NetFilter f(c);
  CHECK(f.outbound(out).pass);
  CHECK(f.inbound(in).pass);
  CHECK(f.outbound(out).pass);  // exactly at the cap
  CHECK_FALSE(f.report().cap_reached);
  const Decision over = f.inbound(in);
  CHECK_FALSE(over.pass);
  CHECK(over.reply.empty());
  CHECK_FALSE(f.outbound(out).pass);
  CHECK_FALSE(f.outbound(arp(kGuestMac, guest_ip(), gateway_ip())).pass);
  const NetReport r = f.report();
  CHECK(r.cap_reached);
  CHECK(r.bytes_out + r.bytes_in == c.max_bytes);
  CHECK(r.frames_out == 2);
  CHECK(r.frames_in == 1);
  CHECK(r.dropped_in == 1);
  CHECK(r.dropped_out == 2);
  REQUIRE_FALSE(r.refused.empty());
  for (const Refusal& x : r.refused) CHECK(x.reason == "byte cap");
}

TEST_CASE("a full flow table evicts UDP and closed TCP flows first, then refuses", "[net][flows]") {
  FilterConfig c = config(NetMode::kOpen);
  c.max_flows = 3;
  NetFilter f(c);
  const IpAddress remote = ip("192.0.2.1");
  REQUIRE(f.outbound(out_tcp(remote, 443, kTcpSyn, 1000)).pass);
  REQUIRE(f.outbound(out_tcp(remote, 443, kTcpSyn, 1001)).pass);
  REQUIRE(f.outbound(out_udp(remote, 53, {1}, 1002)).pass);
  // The UDP flow makes room for a new connection.
  REQUIRE(f.outbound(out_tcp(remote, 443, kTcpSyn, 1003)).pass);
  CHECK_FALSE(f.inbound(in_udp(remote, 53, 1002)).pass);
  // Three open connections: nothing to evict. The guest hears at once.
  const Frame fourth = out_tcp(remote, 443, kTcpSyn, 1004);
  const Decision full = f.outbound(fourth);
  CHECK_FALSE(full.pass);
  CHECK_FALSE(full.reply.empty());
  const NetReport r = f.report();
  CHECK(std::any_of(r.refused.begin(), r.refused.end(), [](const Refusal& x) {
    return x.direction == "out" && x.port == 443 && x.reason == "flow table full";
  }));
  // Existing flows keep working; one closes (FIN) and its slot can be reused.
  CHECK(f.inbound(in_tcp(remote, 443, 1000, kTcpAck)).pass);
  CHECK(f.outbound(out_tcp(remote, 443, kTcpFin | kTcpAck, 1001)).pass);
  CHECK(f.outbound(fourth).pass);
  CHECK_FALSE(f.inbound(in_tcp(remote, 443, 1001, kTcpAck)).pass);
  CHECK(f.inbound(in_tcp(remote, 443, 1000, kTcpAck)).pass);
  // A published port cannot take a full table either.
  FilterConfig p = config(NetMode::kEgress, {}, {"80"});
  p.max_flows = 0;
  NetFilter none(p);
  CHECK_FALSE(none.inbound(in_tcp(remote, 5000, 80, kTcpSyn)).pass);
  CHECK(none.report().refused.at(0).reason == "flow table full");
}

TEST_CASE("refusals aggregate by key, sorted by count, at most 256 entries and one for the rest", "[net][report]") {
  NetFilter f(config(NetMode::kEgress));
  for (int i = 0; i < 3; ++i) (void)f.outbound(out_tcp(ip("192.0.2.1"), 22));
  for (int i = 0; i < 5; ++i) (void)f.outbound(out_tcp(ip("192.0.2.2"), 22));
  (void)f.outbound(out_tcp(ip("192.0.2.2"), 23));
  NetReport r = f.report();
  REQUIRE(r.refused.size() == 3);
  CHECK(r.refused[0].destination == "192.0.2.2");
  CHECK(r.refused[0].port == 22);
  CHECK(r.refused[0].count == 5);
  CHECK(r.refused[1].count == 3);
  CHECK(r.refused[2].count == 1);
  CHECK(r.dropped_out == 9);

  for (uint32_t i = 0; i < 400; ++i) (void)f.outbound(out_tcp(IpAddress::v4(0x0a640000 + i), 80));
  r = f.report();
  REQUIRE(r.refused.size() == kMaxRefusalEntries + 1);
  uint64_t total = 0;
  for (size_t i = 0; i < r.refused.size(); ++i) {
    total += r.refused[i].count;
    if (i > 0) CHECK(r.refused[i - 1].count >= r.refused[i].count);
  }
  CHECK(total == r.dropped_out);
  CHECK(r.refused[0].protocol == "other");  // the 147 that did not get their own entry
  CHECK(r.refused[0].reason == "other");
  CHECK(r.refused[0].count == 400 - (kMaxRefusalEntries - 3));
}

TEST_CASE("counters count passed frames and bytes per direction", "[net][report]") {
  NetFilter f(config(NetMode::kOpen));
  const Frame out = out_udp(ip("192.0.2.1"), 7, Frame(100, 0));
  const Frame in = in_udp(ip("192.0.2.1"), 7, kGuestPort, Frame(50, 0));
  REQUIRE(f.outbound(out).pass);
  REQUIRE(f.inbound(in).pass);
  REQUIRE(f.inbound(in).pass);
  const NetReport r = f.report();
  CHECK(r.frames_out == 1);
  CHECK(r.bytes_out == out.size());
  CHECK(r.frames_in == 2);
  CHECK(r.bytes_in == 2 * in.size());
  CHECK(r.dropped_out == 0);
  CHECK(r.refused.empty());
}

}  // namespace
}  // namespace husk::net
