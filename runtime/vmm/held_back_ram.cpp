#include "runtime/vmm/held_back_ram.h"

#include <algorithm>

namespace husk::vmm {

void HeldBackRam::read(uint64_t offset, std::span<uint8_t> data) {
  if (!images_.wait_until_in(kDeadline) || !memory_.read(base_ + offset, data)) {
    std::fill(data.begin(), data.end(), uint8_t{0xff});
  }
}

void HeldBackRam::write(uint64_t offset, std::span<const uint8_t> data) {
  if (images_.wait_until_in(kDeadline)) (void)memory_.write(base_ + offset, data);
}

}  // namespace husk::vmm
