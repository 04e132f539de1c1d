#include "runtime/net/flow_table.h"

namespace husk::net {

void FlowTable::use(std::map<FlowKey, Entry>::iterator it, bool closing) {
  Entry& e = it->second;
  if (e.evictable) evictable_.erase(e.last_used);
  e.last_used = ++clock_;
  e.evictable = e.evictable || closing || it->first.protocol != Protocol::kTcp;
  if (e.evictable) evictable_.emplace(e.last_used, it->first);
}

void FlowTable::erase(std::map<FlowKey, Entry>::iterator it) {
  if (it->second.evictable) evictable_.erase(it->second.last_used);
  auto remote = remotes_.find(it->first.remote);
  if (remote != remotes_.end() && --remote->second == 0) remotes_.erase(remote);
  flows_.erase(it);
}

bool FlowTable::evict_one() {
  if (evictable_.empty()) return false;
  erase(flows_.find(evictable_.begin()->second));
  return true;
}

FlowTable::Record FlowTable::record(const FlowKey& key, bool closing) {
  auto it = flows_.find(key);
  if (it != flows_.end()) {
    use(it, closing);
    return Record::kExisting;
  }
  if (capacity_ == 0) return Record::kFull;
  if (flows_.size() >= capacity_ && !evict_one()) return Record::kFull;
  it = flows_.emplace(key, Entry{}).first;
  ++remotes_[key.remote];
  use(it, closing);
  return Record::kAdded;
}

bool FlowTable::touch(const FlowKey& key, bool closing) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return false;
  use(it, closing);
  return true;
}

bool FlowTable::has_remote(const IpAddress& remote) const { return remotes_.contains(remote); }

}  // namespace husk::net
