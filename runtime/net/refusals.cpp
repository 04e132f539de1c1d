#include "runtime/net/refusals.h"

#include <algorithm>

namespace husk::net {

void RefusalTally::add(std::string_view direction, std::string_view protocol, std::string destination,
                       uint16_t port, std::string_view reason) {
  Key key{std::string(direction), std::string(protocol), std::move(destination), port, std::string(reason)};
  auto it = counts_.find(key);
  if (it != counts_.end()) {
    ++it->second;
  } else if (counts_.size() < kMaxRefusalEntries) {
    counts_.emplace(std::move(key), 1);
  } else {
    ++overflow_;
  }
}

std::vector<Refusal> RefusalTally::sorted() const {
  std::vector<Refusal> out;
  out.reserve(counts_.size() + 1);
  for (const auto& [key, count] : counts_) {
    const auto& [direction, protocol, destination, port, reason] = key;
    out.push_back(Refusal{direction, protocol, destination, port, reason, count});
  }
  if (overflow_ > 0) out.push_back(Refusal{"", "other", "", 0, "other", overflow_});
  // stable_sort keeps the map's key order among equal counts.
  std::stable_sort(out.begin(), out.end(), [](const Refusal& a, const Refusal& b) { return a.count > b.count; });
  return out;
}

}  // namespace husk::net
