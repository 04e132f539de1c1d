// The network part of a job file, as plain values: the mode, the egress
// allow-list and the published ports (docs: issue 14, "virtio-net with an
// egress allow-list, closed by default"). Parsing turns the user's text into
// rules; errors say what was expected and give an example. runtime/net/
// net_filter.h enforces them on every Ethernet frame.
//
// Allow rule forms: NAME[:PORTS], *.NAME[:PORTS], A.B.C.D[/N][:PORTS],
// [IPV6][/N][:PORTS] or a bare IPV6[/N] (no port), where PORTS is one port
// or a range FIRST-LAST. "host.husk.internal" names the host machine (the
// guest's gateway address). Names are stored lower case, without a trailing dot.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/common/result.h"
#include "runtime/net/ip_address.h"

namespace husk::net {

enum class NetMode { kNone, kEgress, kOpen };

// kIcmp only appears in reports and flows; rules and publishes are tcp or udp.
enum class Protocol : uint8_t { kTcp, kUdp, kIcmp };

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 65535;  // all ports by default

  [[nodiscard]] bool contains(uint16_t port) const { return port >= first && port <= last; }
  auto operator<=>(const PortRange&) const = default;
};

inline constexpr std::string_view kHostAliasName = "host.husk.internal";

struct AllowRule {
  enum class Kind { kName, kWildcard, kCidr, kHostAlias };
  Kind kind = Kind::kName;
  // kName: "mirror.example.org"; kWildcard: "example.com" for "*.example.com"
  // (any subdomain at any depth, not the apex).
  std::string name;
  Cidr cidr{};  // kCidr (a single address is a /32 or /128)
  PortRange ports{};
  std::string text;  // as written, for messages and reports
};

[[nodiscard]] Result<AllowRule> parse_allow_rule(std::string_view text);

// Whether a DNS name (lower case, no trailing dot) is one a kName or
// kWildcard rule allows; false for other kinds.
[[nodiscard]] bool name_matches(const AllowRule& rule, std::string_view name);

struct Publish {
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
  Protocol protocol = Protocol::kTcp;
  std::string text;
};

// "8080:80" (host 8080 to guest 80), "8080:80/udp", "80" (the same port on both sides).
[[nodiscard]] Result<Publish> parse_publish(std::string_view text);

[[nodiscard]] std::string_view protocol_name(Protocol protocol);  // "tcp", "udp", "icmp"

}  // namespace husk::net
