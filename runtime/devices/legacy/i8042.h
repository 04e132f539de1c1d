// I8042: the smallest PS/2 controller that lets Linux reset the machine with
// `reboot=k`: the status port always reports empty buffers (so the kernel's
// kb_wait() returns at once) and the command 0xFE (pulse the reset line) ends
// the VM as a guest reset. Ports 0x60 (data) and 0x64 (status/command).
// Missing: keyboard and mouse, the command byte, every other command (the
// guest kernel is built without the i8042 driver).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "runtime/devices/bus.h"

namespace husk::devices {

class I8042 final : public BusDevice {
 public:
  static constexpr uint64_t kDataPort = 0x60;
  static constexpr uint64_t kCommandPort = 0x64;
  static constexpr uint8_t kCmdResetCpu = 0xfe;

  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

  // Offsets are relative to 0x60; the device spans 0x60..0x64 inclusive.
  static constexpr uint64_t kPortSpan = kCommandPort - kDataPort + 1;

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> on_reset_;
};

}  // namespace husk::devices
