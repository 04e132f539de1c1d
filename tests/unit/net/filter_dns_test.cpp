// Tests for runtime/net/dns_message.h and the filter's DNS handling
// (runtime/net/net_filter.h): queries for allowed names pass, others get an
// NXDOMAIN reply; answers teach the filter addresses, through CNAME chains.
#include <catch2/catch.hpp>

#include "runtime/net/dns_message.h"
#include "runtime/net/net_filter.h"
#include "tests/unit/net/filter_frames.h"

namespace husk::net {
namespace {

using namespace test;

Frame query_frame(uint16_t id, std::string_view name, uint16_t sport = 5353) {
  return out_udp(dns_ip(), kDnsPort, dns_query(id, name), sport);
}
Frame answer_frame(uint16_t id, std::string_view name, const std::vector<Rr>& records, uint16_t dport = 5353) {
  return in_udp(dns_ip(), kDnsPort, dport, dns_answer(id, name, records));
}

TEST_CASE("queries parse with one question, lower case; others do not", "[net][dns]") {
  const Frame q = dns_query(0xbeef, "WWW.Example.COM", kDnsTypeAaaa);
  auto parsed = parse_dns_query(q);
  REQUIRE(parsed);
  CHECK(parsed->id == 0xbeef);
  CHECK(parsed->question.name == "www.example.com");
  CHECK(parsed->question.type == kDnsTypeAaaa);
  CHECK(parsed->question_bytes.size() == q.size() - 12);

  Frame two = q;
  put16(two, 4, 2);
  CHECK_FALSE(parse_dns_query(two));
  Frame response = q;
  put16(response, 2, 0x8100);
  CHECK_FALSE(parse_dns_query(response));
  Frame pointer = q;
  pointer[12] = 0xc0;
  pointer[13] = 0x0c;
  CHECK_FALSE(parse_dns_query(pointer));
  for (size_t n = 0; n < q.size(); ++n) CHECK_FALSE(parse_dns_query(Bytes(q).first(n)));
  // A '.' or a control byte inside a label cannot pose as a separator.
  Frame dotted = dns_query(1, "a.example.com");
  dotted[12] = 'x';  // label "a" becomes a 120-byte label: out of bounds
  CHECK_FALSE(parse_dns_query(dotted));
  Frame inner = dns_query(1, "evilXexample.com");
  inner[12 + 1 + 4] = '.';
  auto smuggled = parse_dns_query(inner);
  REQUIRE(smuggled);
  CHECK(smuggled->question.name == "evil?example.com");
}

TEST_CASE("answers: compression pointers must point back, and loops end", "[net][dns]") {
  const Frame a = dns_answer(7, "x.example.com", {Rr{"x.example.com", kDnsTypeA, "", ip("192.0.2.1")}});
  auto parsed = parse_dns_answer(a);
  REQUIRE(parsed);
  REQUIRE(parsed->addresses.size() == 1);
  CHECK(parsed->addresses[0] == ip("192.0.2.1"));
  for (size_t n = 0; n < a.size(); ++n) CHECK_FALSE(parse_dns_answer(Bytes(a).first(n)));

  Frame forward = a;
  const size_t record = dns_query(7, "x.example.com").size();
  put16(forward, record, 0xc000 | static_cast<uint16_t>(record));  // points at itself
  CHECK_FALSE(parse_dns_answer(forward));
  Frame into_header = a;
  put16(into_header, record, 0xc002);
  CHECK_FALSE(parse_dns_answer(into_header));
  Frame rdlength = a;
  put16(rdlength, a.size() - 6, 5);  // an A record's data is 4 bytes, and only 4 are there
  CHECK_FALSE(parse_dns_answer(rdlength));
}

TEST_CASE("a query for an allowed name passes; a refused one gets NXDOMAIN", "[net][dns]") {
  NetFilter f(config(NetMode::kEgress, {"mirror.example.org:443"}));
  CHECK(f.outbound(query_frame(1, "mirror.example.org")).pass);

  const Frame refused = query_frame(0x4242, "Evil.Example.net");
  const Decision d = f.outbound(refused);
  CHECK_FALSE(d.pass);
  const Frame& r = d.reply;
  REQUIRE(r.size() > 14 + 20 + 8 + 12);
  CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), r.begin()));
  CHECK(std::equal(kGatewayMac.begin(), kGatewayMac.end(), r.begin() + 6));
  CHECK(internet_checksum(Bytes(r).subspan(14, 20)) == 0);
  CHECK(r[14 + 9] == kIpProtoUdp);
  CHECK(get16(r, 16) == r.size() - 14);
  const IpAddress from = dns_ip();
  const IpAddress to = guest_ip();
  CHECK(std::equal(from.bytes.begin(), from.bytes.begin() + 4, r.begin() + 26));
  CHECK(std::equal(to.bytes.begin(), to.bytes.begin() + 4, r.begin() + 30));
  CHECK(get16(r, 34) == 53);
  CHECK(get16(r, 36) == 5353);
  CHECK(get16(r, 38) == r.size() - 34);
  const size_t dns = 42;
  CHECK(get16(r, dns) == 0x4242);        // id
  CHECK(get16(r, dns + 2) == 0x8183);    // QR, RD copied, RA, NXDOMAIN
  CHECK(get16(r, dns + 4) == 1);
  CHECK(get16(r, dns + 6) == 0);
  CHECK(get16(r, dns + 8) == 0);
  CHECK(get16(r, dns + 10) == 0);
  // The question exactly as the guest wrote it, case included.
  CHECK(Frame(r.begin() + dns + 12, r.end()) == Frame(refused.begin() + 42 + 12, refused.end()));

  // RD clear in the query: clear in the reply.
  const Decision no_rd = f.outbound(out_udp(dns_ip(), kDnsPort, dns_query(9, "x.net", kDnsTypeA, 0), 5353));
  CHECK(get16(no_rd.reply, dns + 2) == 0x8083);

  const NetReport report = f.report();
  REQUIRE(report.refused.size() == 2);
  CHECK(report.refused[0].protocol == "dns");
  CHECK(report.refused[0].reason == "dns name not allowed");
  CHECK(report.refused[0].port == 53);
  CHECK((report.refused[0].destination == "evil.example.net" || report.refused[0].destination == "x.net"));
}

TEST_CASE("a query that does not parse is refused as malformed, without a reply", "[net][dns]") {
  NetFilter f(config(NetMode::kEgress, {"*.example.org"}));
  Frame garbage = out_udp(dns_ip(), kDnsPort, Frame{1, 2, 3, 4, 5});
  const Decision d = f.outbound(garbage);
  CHECK_FALSE(d.pass);
  CHECK(d.reply.empty());
  REQUIRE(f.report().refused.size() == 1);
  CHECK(f.report().refused[0].reason == "malformed");
}

TEST_CASE("an answer through a CNAME chain teaches the addresses, with the rule's ports", "[net][dns]") {
  NetFilter f(config(NetMode::kEgress, {"*.example.org:443"}));
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.10"), 443)).pass);
  REQUIRE(f.outbound(query_frame(77, "www.example.org")).pass);
  const Decision answer = f.inbound(answer_frame(77, "www.example.org",
                                                 {Rr{"www.example.org", kDnsTypeCname, "edge.cdn.example.net", {}},
                                                  Rr{"edge.cdn.example.net", kDnsTypeCname, "e1.cdn.example.net", {}},
                                                  Rr{"e1.cdn.example.net", kDnsTypeA, "", ip("192.0.2.10")},
                                                  Rr{"e1.cdn.example.net", kDnsTypeAaaa, "", ip("2001:db8::10")},
                                                  Rr{"unrelated.example.com", kDnsTypeA, "", ip("192.0.2.66")}}));
  CHECK(answer.pass);
  CHECK(f.outbound(out_tcp(ip("192.0.2.10"), 443)).pass);
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.10"), 80)).pass);    // not the rule's port
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.66"), 443)).pass);   // not on the chain
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.11"), 443)).pass);   // never answered
  CHECK(f.outbound(out_ip(ip("192.0.2.10"), kIpProtoIcmp, icmp(kIcmpEchoRequest, 0, 3))).pass);
}

TEST_CASE("answers nobody asked for are dropped and teach nothing", "[net][dns]") {
  NetFilter f(config(NetMode::kEgress, {"*.example.org:443"}));
  const std::vector<Rr> records{Rr{"www.example.org", kDnsTypeA, "", ip("192.0.2.20")}};
  CHECK_FALSE(f.inbound(answer_frame(5, "www.example.org", records)).pass);  // no query
  REQUIRE(f.outbound(query_frame(5, "www.example.org")).pass);
  CHECK_FALSE(f.inbound(answer_frame(6, "www.example.org", records)).pass);           // wrong id
  CHECK_FALSE(f.inbound(answer_frame(5, "www.example.org", records, 5354)).pass);     // wrong port
  CHECK_FALSE(f.inbound(answer_frame(5, "other.example.org", {})).pass);              // wrong name
  CHECK_FALSE(f.inbound(in_udp(ip("10.0.2.4"), 53, 5353, dns_answer(5, "www.example.org", records))).pass);
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.20"), 443)).pass);
  CHECK(f.inbound(answer_frame(5, "WWW.example.org", records)).pass);  // 0x20 case changes are fine
  CHECK(f.outbound(out_tcp(ip("192.0.2.20"), 443)).pass);
  CHECK_FALSE(f.inbound(answer_frame(5, "www.example.org", records)).pass);  // answered once
}

TEST_CASE("learned addresses are capped, the oldest forgotten first", "[net][dns]") {
  FilterConfig c = config(NetMode::kEgress, {"example.org"});
  c.max_learned = 2;
  NetFilter f(c);
  for (uint16_t i = 1; i <= 3; ++i) {
    REQUIRE(f.outbound(query_frame(i, "example.org")).pass);
    const IpAddress a = IpAddress::v4(0xc0000200 + i);
    REQUIRE(f.inbound(answer_frame(i, "example.org", {Rr{"example.org", kDnsTypeA, "", a}})).pass);
  }
  CHECK_FALSE(f.outbound(out_tcp(ip("192.0.2.1"), 443)).pass);
  CHECK(f.outbound(out_tcp(ip("192.0.2.2"), 443)).pass);
  CHECK(f.outbound(out_tcp(ip("192.0.2.3"), 443)).pass);
}

TEST_CASE("at most 256 queries wait for an answer", "[net][dns]") {
  NetFilter f(config(NetMode::kEgress, {"example.org"}));
  for (uint16_t id = 0; id < 300; ++id) REQUIRE(f.outbound(query_frame(id, "example.org")).pass);
  CHECK_FALSE(f.inbound(answer_frame(0, "example.org", {})).pass);  // evicted
  CHECK(f.inbound(answer_frame(299, "example.org", {})).pass);
  CHECK(f.inbound(answer_frame(44, "example.org", {})).pass);
}

}  // namespace
}  // namespace husk::net
