#include "runtime/devices/bus.h"

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace husk::devices {

Result<void> Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (len == 0 || base + len < base) {
    return fail(fmt::format("{} bus: bad range {:#x}+{:#x}", name_, base, len));
  }
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < base + len) {
    return fail(fmt::format("{} bus: {:#x}+{:#x} overlaps a device at {:#x}", name_, base, len,
                            next->first));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return fail(fmt::format("{} bus: {:#x}+{:#x} overlaps a device at {:#x}", name_, base,
                              len, prev->first));
    }
  }
  ranges_.emplace(base, Range{len, std::move(device)});
  return {};
}

std::pair<BusDevice*, uint64_t> Bus::find(uint64_t addr, uint64_t size) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return {nullptr, 0};
  --it;
  const uint64_t offset = addr - it->first;
  // The whole access must lie inside the range: a wide access that starts in
  // one device and ends past it is refused rather than split.
  if (offset >= it->second.len || size > it->second.len - offset) return {nullptr, 0};
  return {it->second.device.get(), offset};
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) {
  auto [device, offset] = find(addr, data.size());
  if (device == nullptr) {
    std::memset(data.data(), 0xff, data.size());
    note_unclaimed(addr, data.size(), false);
    return false;
  }
  device->read(offset, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) {
  auto [device, offset] = find(addr, data.size());
  if (device == nullptr) {
    note_unclaimed(addr, data.size(), true);
    return false;
  }
  device->write(offset, data);
  return true;
}

void Bus::note_unclaimed(uint64_t addr, size_t size, bool is_write) {
  std::lock_guard lock(unclaimed_mutex_);
  // Bounded: a guest sweeping the address space must not grow this forever.
  constexpr size_t kMaxRemembered = 4096;
  if (unclaimed_.size() >= kMaxRemembered || !unclaimed_.insert(addr).second) return;
  spdlog::debug("{} bus: unclaimed {}-byte {} at {:#x} (ignored; logged once)", name_, size,
                is_write ? "write" : "read", addr);
}

size_t Bus::unclaimed_count() const {
  std::lock_guard lock(unclaimed_mutex_);
  return unclaimed_.size();
}

}  // namespace husk::devices
