#include "runtime/net/dns_tracker.h"

#include <algorithm>

namespace husk::net {

void DnsTracker::expect(uint16_t guest_port, uint16_t id, std::string name, std::vector<PortRange> ports) {
  // A retransmission replaces the earlier entry rather than taking a second slot.
  auto same = std::find_if(pending_.begin(), pending_.end(),
                           [&](const Pending& p) { return p.guest_port == guest_port && p.id == id; });
  if (same != pending_.end()) pending_.erase(same);
  if (pending_.size() >= kMaxPendingQueries) pending_.pop_front();
  pending_.push_back(Pending{guest_port, id, std::move(name), std::move(ports)});
}

bool DnsTracker::answer(uint16_t guest_port, const DnsAnswer& answer) {
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
    return p.guest_port == guest_port && p.id == answer.id && p.name == answer.question.name;
  });
  if (it == pending_.end()) return false;
  for (const IpAddress& address : answer.addresses) learn(address, it->ports);
  pending_.erase(it);
  return true;
}

void DnsTracker::learn(const IpAddress& address, const std::vector<PortRange>& ports) {
  if (max_learned_ == 0) return;
  auto it = learned_.find(address);
  if (it == learned_.end()) {
    if (learned_.size() >= max_learned_) {
      learned_.erase(learned_order_.front());
      learned_order_.pop_front();
    }
    it = learned_.emplace(address, std::vector<PortRange>{}).first;
    learned_order_.push_back(address);
  }
  // The ranges come from the job's rules, so their number is the user's,
  // not the guest's or the resolver's.
  for (const PortRange& range : ports) {
    if (std::find(it->second.begin(), it->second.end(), range) == it->second.end()) it->second.push_back(range);
  }
}

bool DnsTracker::allows(const IpAddress& address, std::optional<uint16_t> port) const {
  auto it = learned_.find(address);
  if (it == learned_.end()) return false;
  if (!port) return true;
  return std::any_of(it->second.begin(), it->second.end(), [&](const PortRange& r) { return r.contains(*port); });
}

}  // namespace husk::net
