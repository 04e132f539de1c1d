// Connection tracking for the packet filter (runtime/net/net_filter.h): the
// flows the guest opened (or a published port accepted), keyed from the
// guest's side, so that replies can be matched by reversing a packet.
//
// No clock: the filter is pure code, so flows do not time out. Instead a
// flow becomes "closing" once a TCP FIN or RST is seen, and UDP and ICMP
// flows are always evictable. When the table is full, a new flow evicts the
// least recently used evictable flow; when every flow is an open TCP
// connection, the new flow is refused ("flow table full"). Every operation
// is O(log size).
#pragma once

#include <compare>
#include <cstdint>
#include <map>

#include "runtime/net/egress_policy.h"
#include "runtime/net/ip_address.h"

namespace husk::net {

struct FlowKey {
  Protocol protocol = Protocol::kTcp;
  uint16_t guest_port = 0;  // ICMP echo: the identifier
  IpAddress remote{};
  uint16_t remote_port = 0;  // ICMP echo: 0

  auto operator<=>(const FlowKey&) const = default;
};

class FlowTable {
 public:
  explicit FlowTable(size_t capacity) : capacity_(capacity) {}

  enum class Record { kAdded, kExisting, kFull };

  // Adds the flow or refreshes it; `closing` marks a TCP flow as evictable.
  [[nodiscard]] Record record(const FlowKey& key, bool closing);
  // Whether the flow exists; refreshes it (and marks it closing) when it does.
  [[nodiscard]] bool touch(const FlowKey& key, bool closing);
  [[nodiscard]] bool contains(const FlowKey& key) const { return flows_.contains(key); }
  [[nodiscard]] bool has_remote(const IpAddress& remote) const;
  [[nodiscard]] size_t size() const { return flows_.size(); }

 private:
  struct Entry {
    uint64_t last_used = 0;
    bool evictable = false;
  };

  void use(std::map<FlowKey, Entry>::iterator it, bool closing);
  bool evict_one();
  void erase(std::map<FlowKey, Entry>::iterator it);

  size_t capacity_ = 0;
  uint64_t clock_ = 0;
  std::map<FlowKey, Entry> flows_;
  std::map<uint64_t, FlowKey> evictable_;  // by last use, oldest first
  std::map<IpAddress, size_t> remotes_;    // flows per remote address
};

}  // namespace husk::net
