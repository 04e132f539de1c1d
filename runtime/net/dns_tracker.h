// What the packet filter (runtime/net/net_filter.h) learns from DNS: the
// guest's pending queries for allowed names, and the addresses the answers
// gave for them, each with the ports of the rules that allowed the name.
// Learned addresses last for the job's lifetime (answers' TTLs are ignored:
// a job is short, and an address the guest cached must keep working), at
// most max_learned of them, the oldest forgotten first. At most
// kMaxPendingQueries queries wait for an answer, the oldest dropped first.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/net/dns_message.h"
#include "runtime/net/egress_policy.h"
#include "runtime/net/ip_address.h"

namespace husk::net {

inline constexpr size_t kMaxPendingQueries = 256;

class DnsTracker {
 public:
  explicit DnsTracker(size_t max_learned) : max_learned_(max_learned) {}

  // A query the policy let through: its answer will be read.
  void expect(uint16_t guest_port, uint16_t id, std::string name, std::vector<PortRange> ports);
  // True when `answer`, sent to `guest_port`, answers a pending query (same
  // id and question name); then its addresses are learned and the query is
  // no longer pending.
  [[nodiscard]] bool answer(uint16_t guest_port, const DnsAnswer& answer);
  // Whether a learned address allows `port` (nullopt: ICMP, any port).
  [[nodiscard]] bool allows(const IpAddress& address, std::optional<uint16_t> port) const;
  [[nodiscard]] size_t learned() const { return learned_.size(); }
  [[nodiscard]] size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    uint16_t guest_port = 0;
    uint16_t id = 0;
    std::string name;
    std::vector<PortRange> ports;
  };

  void learn(const IpAddress& address, const std::vector<PortRange>& ports);

  size_t max_learned_ = 0;
  std::deque<Pending> pending_;  // oldest first
  std::map<IpAddress, std::vector<PortRange>> learned_;
  std::deque<IpAddress> learned_order_;  // oldest first
};

}  // namespace husk::net
