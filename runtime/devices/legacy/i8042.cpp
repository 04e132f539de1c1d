#include "runtime/devices/legacy/i8042.h"

#include <algorithm>

namespace husk::devices {

void I8042::read(uint64_t /*offset*/, std::span<uint8_t> data) {
  // Status 0: output buffer empty, input buffer empty. Data port: nothing.
  std::fill(data.begin(), data.end(), 0);
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommandPort - kDataPort && !data.empty() && data[0] == kCmdResetCpu) {
    on_reset_();
  }
}

}  // namespace husk::devices
