// Block: virtio-blk (virtio 1.2, section 5.2) over a DiskImage.
// One request queue. Requests: IN (read), OUT (write), FLUSH, GET_ID; any
// other type is answered VIRTIO_BLK_S_UNSUPP. A read-only disk offers
// VIRTIO_BLK_F_RO and fails writes with VIRTIO_BLK_S_IOERR.
// Every request is checked before any I/O: header and status byte present,
// data a whole number of sectors, sector range inside the disk (no
// overflow). A malformed request gets IOERR; a chain the queue refuses
// (hostile descriptors) marks the device as needing reset.
// I/O runs synchronously on the device event-loop thread, never on a vCPU.
// Missing: DISCARD, WRITE_ZEROES, multiple queues, config WCE toggling.
#pragma once

#include <string>

#include "runtime/devices/virtio/block/disk_image.h"
#include "runtime/devices/virtio/chain_io.h"
#include "runtime/devices/virtio/virtio_device.h"

namespace husk::virtio {

class Block final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;

  // `id` is what GET_ID returns (at most 20 bytes are used).
  Block(DiskImage disk, std::string id);

  [[nodiscard]] uint32_t device_id() const override;
  [[nodiscard]] uint64_t features() const override;
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  [[nodiscard]] Result<void> activate(DeviceContext context) override;
  [[nodiscard]] Result<Served> process_queue(uint16_t queue) override;
  void reset() override { ctx_ = {}; }

  // Block keeps nothing between requests: its state is what it serves.
  struct State {
    std::string id;
    uint64_t capacity_bytes = 0;
    bool read_only = false;
  };
  [[nodiscard]] State state() const { return State{id_, disk_.size(), disk_.read_only()}; }

  [[nodiscard]] const DiskImage& disk() const { return disk_; }

 private:
  // Executes one request; returns the status byte for it and adds the data
  // bytes written into the chain to `written`.
  uint8_t execute(ChainReader& reader, ChainWriter& writer, uint32_t& written);

  DiskImage disk_;
  std::string id_;
  DeviceContext ctx_;
};

}  // namespace husk::virtio
