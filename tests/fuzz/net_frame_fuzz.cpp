// libFuzzer target for the packet filter (runtime/net/net_filter.h): every
// frame a hostile guest sends and every frame the outside world sends back
// goes through it. The filter has a fixed egress policy (names, a wildcard,
// CIDRs, the host alias, an IPv6 rule, two published ports) and small
// tables, so eviction and the caps are reached.
//
// Input: u8 mode (0 none, 1 egress, 2 open; mod 3), then records until the
// input ends: u8 op, u16 length, that many bytes (fewer at the end).
// op bit 0: inbound (else outbound). op bit 1: prefix the bytes with the
// right Ethernet header for the direction (guest MAC and gateway MAC,
// EtherType IPv4) so mutations start at the IP header.
//
// Checked, besides no crash, leak or UB: a passed frame has no reply; a
// reply is a well-formed frame to the guest (guest MAC, IPv4 to guest_ip,
// header checksum, and either ICMP type 3 code 13 with a good checksum from
// the refused destination, or UDP from dns_ip:53 holding a DNS response with
// one question and no answers); the report's counters add up (frames and
// drops per direction equal the calls, refusal counts equal the drops), at
// most 257 refusal entries, sorted by count, printable; bytes passed never
// exceed the cap.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "runtime/net/dns_message.h"
#include "runtime/net/frame.h"
#include "runtime/net/net_filter.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk::net;

const MacAddress kGuestMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
const MacAddress kGatewayMac{0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
constexpr uint64_t kMaxBytes = 64 * 1024;

FilterConfig make_config(NetMode mode) {
  FilterConfig c;
  c.mode = mode;
  c.addressing.guest_mac = kGuestMac;
  c.addressing.guest_ip = IpAddress::v4(0x0a00020f);    // 10.0.2.15
  c.addressing.gateway_ip = IpAddress::v4(0x0a000202);  // 10.0.2.2
  c.addressing.dns_ip = IpAddress::v4(0x0a000203);      // 10.0.2.3
  for (const char* text : {"*.example.org:443", "example.com", "192.0.2.0/24:80-81", "host.husk.internal:8080",
                           "[2001:db8::1]:443", "198.51.100.7"}) {
    auto rule = parse_allow_rule(text);
    if (!rule) std::abort();
    c.allow.push_back(*rule);
  }
  for (const char* text : {"8080:80", "5353:53/udp"}) {
    auto publish = parse_publish(text);
    if (!publish) std::abort();
    c.publish.push_back(*publish);
  }
  c.max_bytes = kMaxBytes;
  c.max_flows = 8;
  c.max_learned = 4;
  return c;
}

void check_reply(const FilterConfig& c, const std::vector<uint8_t>& reply) {
  const auto eth = parse_ethernet(reply);
  FUZZ_CHECK(eth && eth->destination == kGuestMac && eth->ethertype == kEtherTypeIpv4);
  const auto ip = parse_ipv4(eth->payload);
  FUZZ_CHECK(ip && !ip->fragment && ip->destination == c.addressing.guest_ip);
  FUZZ_CHECK(ip->payload.size() + kIpv4MinHeaderSize == ip->packet.size());  // no options, no padding
  FUZZ_CHECK(internet_checksum(ip->packet.first(kIpv4MinHeaderSize)) == 0);
  if (ip->protocol == kIpProtoIcmp) {
    const auto icmp = parse_icmp(ip->payload);
    FUZZ_CHECK(icmp && icmp->icmp_type == kIcmpDestUnreachable && icmp->icmp_code == kIcmpCodeAdminProhibited);
    FUZZ_CHECK(internet_checksum(ip->payload) == 0);
    const auto quote = parse_icmp_quote(icmp->payload);
    FUZZ_CHECK(quote && quote->source == c.addressing.guest_ip && quote->destination == ip->source);
    return;
  }
  FUZZ_CHECK(ip->protocol == kIpProtoUdp && ip->source == c.addressing.dns_ip);
  const auto udp = parse_udp(ip->payload);
  FUZZ_CHECK(udp && udp->source_port == kDnsPort && udp->payload.size() + 8 == ip->payload.size());
  const auto answer = parse_dns_answer(udp->payload);
  FUZZ_CHECK(answer && answer->addresses.empty() && (answer->flags & 0x000f) == 3);
}

void check_report(const NetReport& r, uint64_t out_calls, uint64_t in_calls) {
  FUZZ_CHECK(r.frames_out + r.dropped_out == out_calls);
  FUZZ_CHECK(r.frames_in + r.dropped_in == in_calls);
  FUZZ_CHECK(r.bytes_out + r.bytes_in <= kMaxBytes);
  FUZZ_CHECK(r.refused.size() <= kMaxRefusalEntries + 1);
  uint64_t total = 0;
  for (size_t i = 0; i < r.refused.size(); ++i) {
    const Refusal& x = r.refused[i];
    total += x.count;
    FUZZ_CHECK(x.count > 0);
    FUZZ_CHECK(i == 0 || r.refused[i - 1].count >= x.count);
    FUZZ_CHECK(x.direction.empty() || x.direction == "out" || x.direction == "in");
    for (char ch : x.destination) FUZZ_CHECK(static_cast<unsigned char>(ch) > 0x20 && static_cast<unsigned char>(ch) < 0x7f);
  }
  FUZZ_CHECK(total == r.dropped_out + r.dropped_in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  husk::fuzz::Input in(data, size);
  const auto mode = static_cast<NetMode>(in.u8() % 3);
  const FilterConfig config = make_config(mode);
  NetFilter filter(config);
  uint64_t out_calls = 0;
  uint64_t in_calls = 0;
  std::vector<uint8_t> frame;
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const bool inbound = (op & 1) != 0;
    const auto body = in.bytes(in.u16());
    frame.clear();
    if ((op & 2) != 0) {
      const MacAddress& src = inbound ? kGatewayMac : kGuestMac;
      const MacAddress& dst = inbound ? kGuestMac : kGatewayMac;
      frame.insert(frame.end(), dst.begin(), dst.end());
      frame.insert(frame.end(), src.begin(), src.end());
      frame.push_back(0x08);
      frame.push_back(0x00);
    }
    frame.insert(frame.end(), body.begin(), body.end());
    FUZZ_TRACE("%s %zu bytes\n", inbound ? "in" : "out", frame.size());
    const Decision d = inbound ? filter.inbound(frame) : filter.outbound(frame);
    ++(inbound ? in_calls : out_calls);
    FUZZ_TRACE("  %s, reply %zu bytes\n", d.pass ? "passed" : "dropped", d.reply.size());
    if (d.pass) FUZZ_CHECK(d.reply.empty());
    if (inbound) FUZZ_CHECK(d.reply.empty());
    if (!d.reply.empty()) check_reply(config, d.reply);
  }
  check_report(filter.report(), out_calls, in_calls);
  return 0;
}
