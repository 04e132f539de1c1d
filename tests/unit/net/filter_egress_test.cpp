// Tests for runtime/net/net_filter.h, outbound: allowed and refused
// connections, the ICMP "administratively prohibited" reply, spoofing,
// malformed and truncated frames, ARP, fragments, IPv6, modes.
#include <catch2/catch.hpp>

#include "runtime/net/net_filter.h"
#include "tests/unit/net/filter_frames.h"

namespace husk::net {
namespace {

using namespace test;

// Checks `reply` is ICMP type 3 code 13 from `from` to the guest, quoting
// `refused` (the guest's frame) as RFC 792 says, with both checksums right.
void check_prohibited(const Frame& reply, const Frame& refused, const IpAddress& from) {
  REQUIRE(reply.size() >= 14 + 20 + 8);
  CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), reply.begin()));        // to the guest
  CHECK(std::equal(kGatewayMac.begin(), kGatewayMac.end(), reply.begin() + 6));  // from its gateway
  CHECK(get16(reply, 12) == kEtherTypeIpv4);
  const Bytes ip_header = Bytes(reply).subspan(14, 20);
  CHECK(reply[14] == 0x45);
  CHECK(get16(reply, 16) == reply.size() - 14);
  CHECK(reply[23] == kIpProtoIcmp);
  CHECK(internet_checksum(ip_header) == 0);
  CHECK(std::equal(from.bytes.begin(), from.bytes.begin() + 4, reply.begin() + 26));
  const IpAddress guest = guest_ip();
  CHECK(std::equal(guest.bytes.begin(), guest.bytes.begin() + 4, reply.begin() + 30));
  const Bytes icmp_message = Bytes(reply).subspan(34);
  CHECK(icmp_message[0] == 3);
  CHECK(icmp_message[1] == 13);
  CHECK(internet_checksum(icmp_message) == 0);
  // The quote: the refused IP header (20 bytes here) and 8 bytes after it.
  const Frame quote(reply.begin() + 42, reply.end());
  const Frame expected(refused.begin() + 14, refused.begin() + 14 + std::min<size_t>(28, refused.size() - 14));
  CHECK(quote == expected);
}

TEST_CASE("a SYN to an allowed address and port passes; other ports are refused with a reply", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress, {"93.184.216.34:443", "10.9.0.0/16:8000-8100"}));
  CHECK(f.outbound(out_tcp(ip("93.184.216.34"), 443)).pass);
  CHECK(f.outbound(out_tcp(ip("10.9.3.4"), 8050)).pass);
  const Frame denied = out_tcp(ip("93.184.216.34"), 80);
  const Decision d = f.outbound(denied);
  CHECK_FALSE(d.pass);
  check_prohibited(d.reply, denied, ip("93.184.216.34"));
  CHECK_FALSE(f.outbound(out_tcp(ip("10.10.0.1"), 8050)).pass);
  const NetReport r = f.report();
  CHECK(r.frames_out == 2);
  CHECK(r.dropped_out == 2);
  REQUIRE(r.refused.size() == 2);
  CHECK(r.refused[0].direction == "out");
  CHECK(r.refused[0].protocol == "tcp");
  CHECK(r.refused[0].reason == "not allowed");
}

TEST_CASE("refused UDP and ICMP echo get the reply too; ICMP echo needs any rule on the address", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress, {"1.1.1.1:53"}));
  const Frame u = out_udp(ip("8.8.8.8"), 53);
  check_prohibited(f.outbound(u).reply, u, ip("8.8.8.8"));
  const Frame ping = out_ip(ip("8.8.8.8"), kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 7, Frame(32, 0xab)));
  const Decision d = f.outbound(ping);
  CHECK_FALSE(d.pass);
  check_prohibited(d.reply, ping, ip("8.8.8.8"));
  CHECK(f.outbound(out_ip(ip("1.1.1.1"), kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 7))).pass);
  // An ICMP error from the guest is refused without an answer (no loops).
  const Decision err = f.outbound(out_ip(ip("1.1.1.1"), kIpProtoIcmp, icmp(kIcmpDestUnreachable, 3, 0)));
  CHECK_FALSE(err.pass);
  CHECK(err.reply.empty());
}

TEST_CASE("no reply about broadcast or multicast destinations", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress));
  for (const char* address : {"255.255.255.255", "10.0.2.255", "224.0.0.251", "239.1.2.3", "0.0.0.0"}) {
    INFO(address);
    const Decision d = f.outbound(out_udp(ip(address), 5353));
    CHECK_FALSE(d.pass);
    CHECK(d.reply.empty());
  }
  CHECK_FALSE(f.outbound(out_udp(ip("10.0.2.254"), 5353)).reply.empty());
}

TEST_CASE("the reply quotes IP options and short payloads as sent", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress));
  Frame packet = ipv4(guest_ip(), ip("8.8.4.4"), kIpProtoUdp, udp(1, 2, {}));
  // Add 4 bytes of options (NOPs + end) and fix IHL, length and checksum.
  packet.insert(packet.begin() + 20, {1, 1, 1, 0});
  packet[0] = 0x46;
  put16(packet, 2, static_cast<uint16_t>(packet.size()));
  put16(packet, 10, 0);
  put16(packet, 10, internet_checksum(Bytes(packet).first(24)));
  const Frame frame = ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv4, packet);
  const Decision d = f.outbound(frame);
  REQUIRE(d.reply.size() == 14 + 20 + 8 + 24 + 8);
  CHECK(Frame(d.reply.begin() + 42, d.reply.end()) == Frame(frame.begin() + 14, frame.end()));
  CHECK(internet_checksum(Bytes(d.reply).subspan(34)) == 0);
}

TEST_CASE("the host alias allows the gateway's ports and nothing else", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress, {"host.husk.internal:8080"}));
  CHECK(f.outbound(out_tcp(gateway_ip(), 8080)).pass);
  CHECK_FALSE(f.outbound(out_tcp(gateway_ip(), 22)).pass);
  CHECK_FALSE(f.outbound(out_tcp(ip("10.0.2.4"), 8080)).pass);
}

TEST_CASE("spoofed sources are dropped without a reply", "[net][egress]") {
  NetFilter f(config(NetMode::kOpen));
  const MacAddress other{0x52, 0x54, 0, 0, 0, 1};
  const Decision mac = f.outbound(
      ethernet(other, kGatewayMac, kEtherTypeIpv4, ipv4(guest_ip(), ip("1.1.1.1"), kIpProtoTcp, tcp(1, 443, kTcpSyn))));
  CHECK_FALSE(mac.pass);
  CHECK(mac.reply.empty());
  const Decision addr = f.outbound(
      ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv4, ipv4(ip("10.0.2.16"), ip("1.1.1.1"), kIpProtoTcp, tcp(1, 443, kTcpSyn))));
  CHECK_FALSE(addr.pass);
  CHECK(addr.reply.empty());
  const NetReport r = f.report();
  REQUIRE(r.refused.size() == 2);
  for (const Refusal& refusal : r.refused) CHECK(refusal.reason == "spoofed source");
}

TEST_CASE("ARP out passes only as the guest (or a probe); ARP in passes", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress));
  CHECK(f.outbound(arp(kGuestMac, guest_ip(), gateway_ip())).pass);
  CHECK(f.outbound(arp(kGuestMac, ip("0.0.0.0"), guest_ip())).pass);
  CHECK_FALSE(f.outbound(arp(kGuestMac, ip("10.0.2.2"), guest_ip())).pass);
  Frame lying = arp(kGuestMac, guest_ip(), gateway_ip());
  lying[14 + 8] ^= 1;  // sender MAC in the ARP body differs from the Ethernet source
  CHECK_FALSE(f.outbound(lying).pass);
  CHECK(f.inbound(arp(kGatewayMac, gateway_ip(), guest_ip())).pass);
  Frame short_arp = arp(kGuestMac, guest_ip(), gateway_ip());
  short_arp.resize(14 + 27);
  CHECK_FALSE(f.outbound(short_arp).pass);
}

TEST_CASE("fragments, IPv6, VLAN tags and other EtherTypes are dropped", "[net][egress]") {
  NetFilter f(config(NetMode::kEgress, {"0.0.0.0/0"}));
  const Frame more_fragments =
      ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv4, ipv4(guest_ip(), ip("1.1.1.1"), kIpProtoUdp, udp(1, 2, {}), 0x2000));
  const Frame offset = ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv4,
                                ipv4(guest_ip(), ip("1.1.1.1"), kIpProtoUdp, udp(1, 2, {}), 0x0010));
  CHECK_FALSE(f.outbound(more_fragments).pass);
  CHECK_FALSE(f.outbound(offset).pass);
  CHECK(f.outbound(out_udp(ip("1.1.1.1"), 2)).pass);
  CHECK_FALSE(f.outbound(ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv6, Frame(60, 0x60))).pass);
  CHECK_FALSE(f.outbound(ethernet(kGuestMac, kGatewayMac, 0x8100, Frame(60, 0))).pass);
  CHECK_FALSE(f.outbound(ethernet(kGuestMac, kGatewayMac, 0x88cc, Frame(60, 0))).pass);
  const NetReport r = f.report();
  CHECK(r.dropped_out == 5);
  const auto fragment = std::find_if(r.refused.begin(), r.refused.end(),
                                     [](const Refusal& x) { return x.reason == "fragment"; });
  REQUIRE(fragment != r.refused.end());
  CHECK(fragment->count == 2);
  CHECK(fragment->destination == "1.1.1.1");
}

TEST_CASE("truncated frames are dropped at every length, without a crash", "[net][egress]") {
  NetFilter f(config(NetMode::kOpen));
  const Frame frames[] = {out_tcp(ip("1.1.1.1"), 443), out_udp(dns_ip(), 53, dns_query(1, "example.com")),
                          out_ip(ip("1.1.1.1"), kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 9)),
                          arp(kGuestMac, guest_ip(), gateway_ip())};
  for (const Frame& whole : frames) {
    for (size_t n = 0; n < whole.size(); ++n) {
      INFO("length " << n);
      const Frame cut(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(n));
      CHECK_FALSE(f.outbound(cut).pass);
      CHECK_FALSE(f.inbound(cut).pass);
    }
  }
  CHECK(f.report().frames_out == 0);
  CHECK(f.report().frames_in == 0);
}

TEST_CASE("lying lengths are malformed", "[net][egress]") {
  NetFilter f(config(NetMode::kOpen));
  Frame total = out_tcp(ip("1.1.1.1"), 443);
  put16(total, 16, static_cast<uint16_t>(total.size()));  // total length beyond the packet
  CHECK_FALSE(f.outbound(total).pass);
  Frame ihl = out_tcp(ip("1.1.1.1"), 443);
  ihl[14] = 0x44;
  CHECK_FALSE(f.outbound(ihl).pass);
  Frame doff = out_tcp(ip("1.1.1.1"), 443);
  doff[14 + 20 + 12] = 0xf0;  // a 60-byte TCP header in 20 bytes
  CHECK_FALSE(f.outbound(doff).pass);
  Frame udp_length = out_udp(ip("1.1.1.1"), 9);
  put16(udp_length, 14 + 20 + 4, 200);
  CHECK_FALSE(f.outbound(udp_length).pass);
  Frame version = out_tcp(ip("1.1.1.1"), 443);
  version[14] = 0x65;
  CHECK_FALSE(f.outbound(version).pass);
  const NetReport r = f.report();
  REQUIRE(r.refused.size() >= 1);
  uint64_t malformed = 0;
  for (const Refusal& refusal : r.refused) malformed += refusal.reason == "malformed" ? refusal.count : 0;
  CHECK(malformed == 5);
  // Ethernet padding after a short packet is fine.
  Frame padded = out_tcp(ip("1.1.1.1"), 443);
  padded.resize(padded.size() + 6, 0);
  CHECK(f.outbound(padded).pass);
}

TEST_CASE("open mode passes every well-formed frame; none mode nothing", "[net][egress]") {
  NetFilter open(config(NetMode::kOpen));
  CHECK(open.outbound(out_tcp(ip("203.0.113.9"), 25)).pass);
  CHECK(open.outbound(out_udp(ip("203.0.113.9"), 9999)).pass);
  CHECK(open.outbound(out_ip(ip("203.0.113.9"), 47, Frame(8, 0))).pass);  // GRE: no flow, but out
  CHECK(open.inbound(in_tcp(ip("203.0.113.9"), 25, kGuestPort)).pass);
  CHECK_FALSE(open.inbound(in_tcp(ip("203.0.113.9"), 25, kGuestPort + 1)).pass);
  CHECK(open.outbound(out_udp(dns_ip(), 53, dns_query(5, "anything.example"))).pass);
  CHECK(open.inbound(in_udp(dns_ip(), 53, kGuestPort, dns_answer(5, "anything.example", {}))).pass);
  CHECK_FALSE(open.outbound(ethernet(kGuestMac, kGatewayMac, kEtherTypeIpv6, Frame(60, 0x60))).pass);

  NetFilter none(config(NetMode::kNone, {"0.0.0.0/0"}));
  CHECK_FALSE(none.outbound(out_tcp(ip("203.0.113.9"), 25)).pass);
  CHECK_FALSE(none.outbound(arp(kGuestMac, guest_ip(), gateway_ip())).pass);
  CHECK_FALSE(none.inbound(arp(kGatewayMac, gateway_ip(), guest_ip())).pass);
}

}  // namespace
}  // namespace husk::net
