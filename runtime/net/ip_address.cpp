#include "runtime/net/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace husk::net {

namespace {

// inet_pton needs a NUL-terminated string; the longest textual IPv6 address
// (with an embedded IPv4 part) is 45 characters.
constexpr size_t kMaxText = 45;

uint8_t max_prefix(IpFamily family) { return family == IpFamily::kV4 ? 32 : 128; }

}  // namespace

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress a;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::v4_bytes(std::span<const uint8_t, 4> network_order) {
  IpAddress a;
  std::copy(network_order.begin(), network_order.end(), a.bytes.begin());
  return a;
}

IpAddress IpAddress::v6_bytes(std::span<const uint8_t, 16> network_order) {
  IpAddress a;
  a.family = IpFamily::kV6;
  std::copy(network_order.begin(), network_order.end(), a.bytes.begin());
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxText || text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string z(text);
  IpAddress a;
  if (z.find(':') == std::string::npos) {
    if (::inet_pton(AF_INET, z.c_str(), a.bytes.data()) != 1) return std::nullopt;
    return a;
  }
  a.family = IpFamily::kV6;
  if (::inet_pton(AF_INET6, z.c_str(), a.bytes.data()) != 1) return std::nullopt;
  return a;
}

uint32_t IpAddress::v4_host_order() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | bytes[3];
}

bool IpAddress::is_unspecified() const {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.family != base.family) return false;
  const uint8_t full = prefix / 8;
  for (uint8_t i = 0; i < full; ++i) {
    if (address.bytes[i] != base.bytes[i]) return false;
  }
  const uint8_t rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[full] & mask) == (base.bytes[full] & mask);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  const size_t slash = text.find('/');
  auto base = IpAddress::parse(text.substr(0, slash));
  if (!base) return std::nullopt;
  Cidr c;
  c.base = *base;
  c.prefix = max_prefix(base->family);
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || digits.size() > 3 || ec != std::errc() || end != digits.data() + digits.size() ||
        value > max_prefix(base->family)) {
      return std::nullopt;
    }
    c.prefix = static_cast<uint8_t>(value);
  }
  // Clear the host bits, so that "10.1.2.3/8" and "10.0.0.0/8" are one block.
  for (size_t bit = c.prefix; bit < max_prefix(c.base.family); ++bit) {
    c.base.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return c;
}

std::string Cidr::to_string() const { return base.to_string() + "/" + std::to_string(prefix); }

}  // namespace husk::net
