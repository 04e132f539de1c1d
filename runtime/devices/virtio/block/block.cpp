#include "runtime/devices/virtio/block/block.h"

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include <cstring>

namespace husk::virtio {

namespace {

// The request header every chain starts with (5.2.6).
struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

constexpr uint64_t kSector = DiskImage::kSectorSize;
// Larger than any request Linux sends (seg_max segments of at most a few
// MiB); keeps the used length within 32 bits.
constexpr uint64_t kMaxRequestBytes = uint64_t{1} << 30;

}  // namespace

Block::Block(DiskImage disk, std::string id) : disk_(std::move(disk)), id_(std::move(id)) {}

uint32_t Block::device_id() const { return VIRTIO_ID_BLOCK; }

uint64_t Block::features() const {
  uint64_t f = kCommonFeatures | (uint64_t{1} << VIRTIO_BLK_F_FLUSH) |
               (uint64_t{1} << VIRTIO_BLK_F_SEG_MAX) | (uint64_t{1} << VIRTIO_BLK_F_BLK_SIZE);
  if (disk_.read_only()) f |= uint64_t{1} << VIRTIO_BLK_F_RO;
  return f;
}

void Block::read_config(uint64_t offset, std::span<uint8_t> data) const {
  virtio_blk_config config{};
  config.capacity = disk_.size() / kSector;
  // Room for the header and the status descriptors in a full chain.
  config.seg_max = kQueueSize - 2;
  config.blk_size = static_cast<uint32_t>(kSector);
  read_config_bytes(std::span(reinterpret_cast<const uint8_t*>(&config), sizeof(config)), offset, data);
}

Result<void> Block::activate(DeviceContext context) {
  ctx_ = std::move(context);
  return {};
}

uint8_t Block::execute(ChainReader& reader, ChainWriter& writer, uint32_t& written) {
  auto header = reader.read_obj<RequestHeader>();
  if (!header) return VIRTIO_BLK_S_IOERR;
  // The last writable byte is the status; everything before it is data.
  const uint64_t writable_data = writer.remaining() - 1;
  switch (header->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const bool is_read = header->type == VIRTIO_BLK_T_IN;
      const uint64_t len = is_read ? writable_data : reader.remaining();
      const uint64_t capacity = disk_.size() / kSector;
      // Checked without multiplying the guest's sector number first, so
      // nothing can overflow: sector <= capacity, len <= bytes left.
      if (len % kSector != 0 || len > kMaxRequestBytes || header->sector > capacity ||
          len / kSector > capacity - header->sector) {
        return VIRTIO_BLK_S_IOERR;
      }
      if (!is_read && disk_.read_only()) return VIRTIO_BLK_S_IOERR;
      const uint64_t offset = header->sector * kSector;
      auto iov = is_read ? writer.take(len) : reader.take(len);
      if (!iov) return VIRTIO_BLK_S_IOERR;
      auto io = is_read ? disk_.read(offset, *iov) : disk_.write(offset, *iov);
      if (!io) return VIRTIO_BLK_S_IOERR;
      if (is_read) written += static_cast<uint32_t>(len);
      return VIRTIO_BLK_S_OK;
    }
    case VIRTIO_BLK_T_FLUSH:
      return disk_.flush() ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
    case VIRTIO_BLK_T_GET_ID: {
      uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
      std::memcpy(id, id_.data(), std::min(id_.size(), sizeof(id)));
      const uint64_t n = std::min<uint64_t>(writable_data, sizeof(id));
      if (!writer.write(std::span<const uint8_t>(id, n))) return VIRTIO_BLK_S_IOERR;
      written += static_cast<uint32_t>(n);
      return VIRTIO_BLK_S_OK;
    }
    default:
      return VIRTIO_BLK_S_UNSUPP;
  }
}

Result<Served> Block::process_queue(uint16_t queue) {
  if (queue != 0) return Served::kDone;
  return serve_queue(ctx_, 0, [this](const DescriptorChain& chain) -> uint32_t {
    ChainReader reader(*ctx_.memory, chain);
    ChainWriter writer(*ctx_.memory, chain);
    // A chain without a writable byte has nowhere to put the status: the
    // request is returned untouched (the guest driver never sends one).
    if (writer.remaining() < 1) return 0;
    uint32_t written = 0;
    const uint8_t status = execute(reader, writer, written);
    // The status goes in the chain's last writable byte.
    ChainWriter status_writer(*ctx_.memory, chain);
    if (status_writer.take(status_writer.remaining() - 1) && status_writer.write_obj(status)) {
      written += 1;
    }
    return written;
  });
}

}  // namespace husk::virtio
