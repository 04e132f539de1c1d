// An IPv4 or IPv6 address as a plain value (family and 16 bytes in network
// order), and a CIDR block. Used by the egress policy (runtime/net/
// egress_policy.h) and the packet filter (runtime/net/net_filter.h); ordered
// so that it can key std::map. Text forms are those of inet_pton/inet_ntop
// (RFC 4291 section 2.2 for IPv6; IPv4 only as four decimal parts).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace husk::net {

enum class IpFamily : uint8_t { kV4, kV6 };

struct IpAddress {
  IpFamily family = IpFamily::kV4;
  // Network byte order; an IPv4 address uses the first 4 bytes, the rest stay 0
  // so that defaulted comparison is exact.
  std::array<uint8_t, 16> bytes{};

  [[nodiscard]] static IpAddress v4(uint32_t host_order);
  [[nodiscard]] static IpAddress v4_bytes(std::span<const uint8_t, 4> network_order);
  [[nodiscard]] static IpAddress v6_bytes(std::span<const uint8_t, 16> network_order);
  // "10.0.2.15", "2001:db8::1"; nullopt for anything else (no brackets, no port).
  [[nodiscard]] static std::optional<IpAddress> parse(std::string_view text);

  [[nodiscard]] bool is_v4() const { return family == IpFamily::kV4; }
  [[nodiscard]] uint32_t v4_host_order() const;
  [[nodiscard]] bool is_unspecified() const;  // 0.0.0.0 or ::
  [[nodiscard]] std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;
};

// A block of addresses: base (host bits cleared by parse) and prefix length.
struct Cidr {
  IpAddress base{};
  uint8_t prefix = 0;

  // False for an address of the other family.
  [[nodiscard]] bool contains(const IpAddress& address) const;
  // "10.0.0.0/8", "2001:db8::/32", or a bare address (/32 or /128). Host bits
  // below the prefix are cleared. nullopt when the address does not parse or
  // the prefix is out of range for the family.
  [[nodiscard]] static std::optional<Cidr> parse(std::string_view text);
  [[nodiscard]] std::string to_string() const;

  auto operator<=>(const Cidr&) const = default;
};

}  // namespace husk::net
