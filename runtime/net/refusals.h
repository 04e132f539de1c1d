// The refusal tally of the packet filter (runtime/net/net_filter.h): one
// entry per (direction, protocol, destination, port, reason) with a count,
// at most kMaxRefusalEntries distinct entries; refusals past that go into
// one aggregated entry (protocol "other", reason "other", no destination),
// so a guest that sprays addresses cannot grow the report without bound.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace husk::net {

inline constexpr size_t kMaxRefusalEntries = 256;

struct Refusal {
  std::string direction;    // "out" or "in"
  std::string protocol;     // "tcp", "udp", "icmp", "dns", "arp", "ipv6", "other"
  std::string destination;  // an IP address, or the DNS name refused
  uint16_t port = 0;
  // "not allowed", "dns name not allowed", "spoofed source", "malformed",
  // "fragment", "byte cap", "flow table full", "not published", "wrong destination"
  std::string reason;
  uint64_t count = 0;
};

class RefusalTally {
 public:
  void add(std::string_view direction, std::string_view protocol, std::string destination, uint16_t port,
           std::string_view reason);
  // Sorted by count, highest first (then by key, so the order is stable).
  [[nodiscard]] std::vector<Refusal> sorted() const;

 private:
  using Key = std::tuple<std::string, std::string, std::string, uint16_t, std::string>;
  std::map<Key, uint64_t> counts_;
  uint64_t overflow_ = 0;
};

}  // namespace husk::net
