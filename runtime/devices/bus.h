// Bus: dispatches guest port-I/O or MMIO accesses to the device that claims
// the address range. A bus is filled while the VM is built and read-only once
// vCPUs run, so dispatch needs no lock; devices lock their own state.
//
// An access no device claims is logged once per address and then ignored:
// reads see all ones (an absent ISA device floats high), writes vanish.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>

#include "runtime/common/result.h"

namespace husk::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the start of the range the device was inserted
  // at; data.size() is the access width (1, 2, 4 or 8 bytes).
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Claims [base, base+len) for `device`; overlapping an existing range is
  // an error (a wiring mistake in the VM builder).
  [[nodiscard]] Result<void> insert(std::shared_ptr<BusDevice> device, uint64_t base,
                                    uint64_t len);

  // Returns false when no device claims the access (after logging it once).
  bool read(uint64_t addr, std::span<uint8_t> data);
  bool write(uint64_t addr, std::span<const uint8_t> data);

  // How many distinct unclaimed addresses were seen (for tests and metrics).
  [[nodiscard]] size_t unclaimed_count() const;

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // The device whose range holds [addr, addr+size), and the offset into it.
  [[nodiscard]] std::pair<BusDevice*, uint64_t> find(uint64_t addr, uint64_t size) const;
  void note_unclaimed(uint64_t addr, size_t size, bool is_write);

  std::string name_;
  std::map<uint64_t, Range> ranges_;  // by base address
  mutable std::mutex unclaimed_mutex_;
  std::set<uint64_t> unclaimed_;
};

}  // namespace husk::devices
