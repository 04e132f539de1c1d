// Tests for runtime/net/ip_address.h and runtime/net/egress_policy.h: the
// allow rules and published ports of a job file, good and bad, with their
// messages, and how names match rules.
#include <string>

#include <catch2/catch.hpp>

#include "runtime/net/egress_policy.h"
#include "runtime/net/ip_address.h"

namespace husk::net {
namespace {

using Catch::Matchers::Contains;
using Kind = AllowRule::Kind;

std::string rule_error(std::string_view text) {
  auto r = parse_allow_rule(text);
  REQUIRE_FALSE(r);
  return r.error().message;
}

AllowRule rule(std::string_view text) {
  auto r = parse_allow_rule(text);
  INFO(text);
  REQUIRE(r);
  return *r;
}

TEST_CASE("addresses parse, print and compare", "[net][policy]") {
  CHECK(IpAddress::parse("10.0.2.15")->to_string() == "10.0.2.15");
  CHECK(IpAddress::parse("10.0.2.15") == IpAddress::v4(0x0a00020f));
  CHECK(IpAddress::v4(0x0a00020f).v4_host_order() == 0x0a00020fu);
  CHECK(IpAddress::parse("2001:DB8::1")->to_string() == "2001:db8::1");
  CHECK_FALSE(IpAddress::parse("2001:db8::1")->is_v4());
  CHECK(IpAddress::parse("10.0.0.1") < *IpAddress::parse("10.0.0.2"));
  for (const char* bad : {"", "10.0.0", "10.0.0.256", "010.0.0.1", "[::1]", "10.0.0.1:80", "a.b.c.d", "::g"}) {
    INFO(bad);
    CHECK_FALSE(IpAddress::parse(bad));
  }
}

TEST_CASE("CIDR blocks contain their addresses and no others", "[net][policy]") {
  const Cidr c = *Cidr::parse("10.1.2.3/8");
  CHECK(c.to_string() == "10.0.0.0/8");
  CHECK(c.contains(*IpAddress::parse("10.255.0.1")));
  CHECK_FALSE(c.contains(*IpAddress::parse("11.0.0.1")));
  CHECK_FALSE(c.contains(*IpAddress::parse("::a00:1")));
  const Cidr odd = *Cidr::parse("192.168.0.0/23");
  CHECK(odd.contains(*IpAddress::parse("192.168.1.200")));
  CHECK_FALSE(odd.contains(*IpAddress::parse("192.168.2.1")));
  CHECK(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("8.8.8.8")));
  CHECK(Cidr::parse("1.2.3.4")->prefix == 32);
  CHECK(Cidr::parse("2001:db8::/32")->contains(*IpAddress::parse("2001:db8:ffff::1")));
  CHECK_FALSE(Cidr::parse("10.0.0.0/33"));
  CHECK_FALSE(Cidr::parse("::/129"));
  CHECK_FALSE(Cidr::parse("10.0.0.0/"));
  CHECK_FALSE(Cidr::parse("10.0.0.0/-1"));
}

TEST_CASE("allow rules of every form", "[net][policy]") {
  AllowRule r = rule("Mirror.Example.org.");
  CHECK(r.kind == Kind::kName);
  CHECK(r.name == "mirror.example.org");
  CHECK(r.ports == PortRange{0, 65535});
  CHECK(r.text == "Mirror.Example.org.");

  r = rule("mirror.example.org:443");
  CHECK(r.ports == PortRange{443, 443});

  r = rule("*.example.com:8000-8100");
  CHECK(r.kind == Kind::kWildcard);
  CHECK(r.name == "example.com");
  CHECK(r.ports == PortRange{8000, 8100});

  r = rule("10.0.0.0/8:5432");
  CHECK(r.kind == Kind::kCidr);
  CHECK(r.cidr.to_string() == "10.0.0.0/8");
  CHECK(r.ports == PortRange{5432, 5432});

  r = rule("1.2.3.4");
  CHECK(r.cidr.to_string() == "1.2.3.4/32");

  r = rule("[2001:db8::1]:443");
  CHECK(r.kind == Kind::kCidr);
  CHECK(r.cidr.to_string() == "2001:db8::1/128");
  CHECK(r.ports == PortRange{443, 443});

  r = rule("[2001:db8::]/32:80-81");
  CHECK(r.cidr.to_string() == "2001:db8::/32");
  CHECK(r.ports == PortRange{80, 81});

  r = rule("2001:db8::/48");
  CHECK(r.cidr.to_string() == "2001:db8::/48");

  r = rule("host.husk.internal:8080");
  CHECK(r.kind == Kind::kHostAlias);
  CHECK(r.ports == PortRange{8080, 8080});

  CHECK(rule("_dmarc.example.com").kind == Kind::kName);
  CHECK(rule("localhost").name == "localhost");
}

TEST_CASE("bad allow rules say what was expected, with an example", "[net][policy]") {
  CHECK(rule_error("mirror.example.org:99999") ==
        "\"mirror.example.org:99999\": port must be 1-65535, or a range FIRST-LAST such as 8000-8100 "
        "(e.g. \"mirror.example.org:443\")");
  CHECK_THAT(rule_error(""), Contains("expected a host name") && Contains("e.g."));
  CHECK_THAT(rule_error("example.com:0"), Contains("port must be 1-65535"));
  CHECK_THAT(rule_error("example.com:"), Contains("port must be 1-65535"));
  CHECK_THAT(rule_error("example.com:http"), Contains("port must be 1-65535"));
  CHECK_THAT(rule_error("example.com:100-90"), Contains("range"));
  CHECK_THAT(rule_error("example.com:-5"), Contains("port must be"));
  CHECK_THAT(rule_error("exa_mple-.com"), Contains("\"exa_mple-\" is not a valid DNS label"));
  CHECK_THAT(rule_error("a..b"), Contains("\"\" is not a valid DNS label"));
  CHECK_THAT(rule_error("caf\xc3\xa9.fr"), Contains("not a valid DNS label"));
  CHECK_THAT(rule_error(std::string(64, 'a') + ".com"), Contains("not a valid DNS label"));
  CHECK_THAT(rule_error(std::string(250, 'a') + ".com"), Contains("at most 253"));
  CHECK_THAT(rule_error("10.0.0.0/33"), Contains("prefix must be 0-32") && Contains("(e.g. \"10.0.0.0/8\")"));
  CHECK_THAT(rule_error("[2001:db8::]/129"), Contains("prefix must be 0-128"));
  CHECK_THAT(rule_error("10.0.0.256"), Contains("not a valid IP address"));
  CHECK_THAT(rule_error("10.0.0"), Contains("not a valid IP address"));
  CHECK_THAT(rule_error("[10.0.0.1]:80"), Contains("IPv6 address inside [ ]"));
  CHECK_THAT(rule_error("[2001:db8::1:443"), Contains("missing ']'"));
  CHECK_THAT(rule_error("[2001:db8::1]x"), Contains("after ']'"));
  CHECK_THAT(rule_error("2001:db8::1:443:x"), Contains("put an IPv6 address in [ ]"));
  CHECK_THAT(rule_error("a.*.example.com"), Contains("wildcard") && Contains("*.example.com"));
  CHECK_THAT(rule_error("*"), Contains("wildcard"));
  CHECK_THAT(rule_error("*."), Contains("expected a host name"));
  CHECK_THAT(rule_error("example.com :443"), Contains("spaces"));
}

TEST_CASE("wildcards match subdomains at any depth, never the apex or a lookalike", "[net][policy]") {
  const AllowRule wildcard = rule("*.example.com");
  CHECK(name_matches(wildcard, "sub.example.com"));
  CHECK(name_matches(wildcard, "a.b.example.com"));
  CHECK_FALSE(name_matches(wildcard, "example.com"));
  CHECK_FALSE(name_matches(wildcard, "badexample.com"));
  CHECK_FALSE(name_matches(wildcard, ".example.com"));
  CHECK_FALSE(name_matches(wildcard, "example.com.evil.org"));
  const AllowRule exact = rule("example.com");
  CHECK(name_matches(exact, "example.com"));
  CHECK_FALSE(name_matches(exact, "sub.example.com"));
  CHECK_FALSE(name_matches(rule("10.0.0.1"), "10.0.0.1"));
}

TEST_CASE("published ports", "[net][policy]") {
  auto p = parse_publish("8080:80");
  REQUIRE(p);
  CHECK(p->host_port == 8080);
  CHECK(p->guest_port == 80);
  CHECK(p->protocol == Protocol::kTcp);
  CHECK(p->text == "8080:80");
  p = parse_publish("5353:53/udp");
  REQUIRE(p);
  CHECK(p->protocol == Protocol::kUdp);
  CHECK(p->guest_port == 53);
  p = parse_publish("80/tcp");
  REQUIRE(p);
  CHECK(p->host_port == 80);
  CHECK(p->guest_port == 80);
  for (const char* bad : {"", "0", "65536", "80:", ":80", "80:80/icmp", "a:b", "80:80:80", "80/"}) {
    INFO(bad);
    auto e = parse_publish(bad);
    REQUIRE_FALSE(e);
    CHECK_THAT(e.error().message, Contains(std::string("\"") + bad + "\"") && Contains("(e.g. \"8080:80\""));
  }
}

}  // namespace
}  // namespace husk::net
