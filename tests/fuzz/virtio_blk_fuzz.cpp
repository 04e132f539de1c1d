// libFuzzer target for virtio-blk requests (virtio 1.2, 5.2.6) through the
// mmio transport: a correctly initialised device on a small disk image
// (read-only, copy-on-write or persistent, 1 to 128 sectors), then request
// chains a hostile driver builds: any type and sector, headers short, long
// or split over descriptors, data in up to four segments of any length and
// direction, the status byte missing, readable, oversized or sharing the
// last data buffer, direct or indirect, notified one by one or in batches.
//
// Besides "no crash, no leak, no hang", every answer is checked against a
// model of the disk (the spec's rules, which block.h states too):
//   - a chain the queue must accept never fails the device (NEEDS_RESET);
//   - each request comes back once; its used length covers only writable
//     bytes; its status byte is OK, IOERR or UNSUPP;
//   - a request that is valid gets OK, an invalid one never does;
//   - a read returns what the model holds, a write changes the model
//     (writes to a read-only disk are refused).
//
// Input: u8 disk (bits 0-1 size, 2-3 mode), u8 features/queue size, then
// requests until the input ends (see add_request). Build and run: `make fuzz`.
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>

#include <fcntl.h>

#include <map>
#include <memory>
#include <optional>

#include "runtime/devices/virtio/block/block.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk;
using namespace husk::fuzz;
using virtio::MmioTransport;

constexpr uint64_t kMemSize = 1 << 20;
constexpr GuestAddress kRing = 0x0;
constexpr GuestAddress kIndirect = 0x8000;  // one table per request in a batch
constexpr GuestAddress kBuffers = 0x10000;
constexpr size_t kMaxRequests = 96;
constexpr uint64_t kSector = 512;
const char kDiskId[] = "husk-fuzz-disk-id-0123456789";  // longer than 20 bytes: cut

const GuestMemory& memory() {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{0, kMemSize}});
    FUZZ_CHECK(m.has_value());
    return new GuestMemory(std::move(*m));
  }();
  return *mem;
}

constexpr size_t kDiskSizes[] = {512, 1000, 4096, 65536};

// Disk contents and OUT data come from here (made once: byte loops in the
// harness are instrumented and would dominate each run).
const std::vector<uint8_t>& pattern() {
  static std::vector<uint8_t>* p = [] {
    auto* v = new std::vector<uint8_t>(1 << 17);
    for (size_t i = 0; i < v->size(); ++i) (*v)[i] = static_cast<uint8_t>(i * 7 + i / 512);
    return v;
  }();
  return *p;
}

const std::string& disk_path(unsigned index) {
  static std::vector<std::string>* paths = [] {
    auto* p = new std::vector<std::string>();
    for (size_t size : kDiskSizes) {
      p->push_back(scratch().write("blk" + std::to_string(size),
                                   std::vector<uint8_t>(pattern().begin(), pattern().begin() + size)));
    }
    return p;
  }();
  return (*paths)[index];
}

// Writes the pattern over a disk image again.
void restore_disk(unsigned index) {
  UniqueFd fd(::open(disk_path(index).c_str(), O_WRONLY | O_CLOEXEC));
  FUZZ_CHECK(fd.valid());
  const auto size = static_cast<ssize_t>(kDiskSizes[index]);
  FUZZ_CHECK(::pwrite(fd.get(), pattern().data(), kDiskSizes[index], 0) == size);
}

struct Request {
  uint32_t type = 0;  // as the device reads them (see add_request)
  uint64_t sector = 0;
  std::vector<Ring::Buffer> bufs;
  bool structurally_valid = true;  // the queue must accept the chain
  std::vector<uint8_t> out_data;   // OUT: the bytes after the header
};

class Harness {
 public:
  Harness(unsigned disk, virtio::DiskMode mode, EventLoop loop, bool event_idx, uint16_t queue_size)
      : mode_(mode), loop_(std::move(loop)), ring_(memory(), queue_size, kRing) {
    auto image = virtio::DiskImage::open(disk_path(disk), mode);
    FUZZ_CHECK(image.has_value());
    capacity_ = image->size() / kSector;
    model_.assign(pattern().begin(), pattern().begin() + static_cast<ptrdiff_t>(capacity_ * kSector));
    device_ = std::make_shared<virtio::Block>(std::move(*image), kDiskId);
    transport_ = std::make_unique<MmioTransport>(device_, memory(), irq_, &loop_);
    FUZZ_CHECK(reg_read(*transport_, VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK);
    const uint64_t features = device_features(*transport_);
    const bool offers_ro = (features & (uint64_t{1} << VIRTIO_BLK_F_RO)) != 0;
    FUZZ_CHECK(offers_ro == (mode == virtio::DiskMode::kReadOnly));
    uint64_t capacity_cfg = 0;
    transport_->read(VIRTIO_MMIO_CONFIG, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&capacity_cfg), 8));
    FUZZ_CHECK(capacity_cfg == capacity_);
    Ring* rings[] = {&ring_};
    const uint64_t want = virtio::kFeatureVersion1 | virtio::kFeatureIndirectDesc |
                          (event_idx ? virtio::kFeatureEventIdx : 0);
    const uint32_t status = driver_init(*transport_, want & features, rings);
    FUZZ_CHECK((status & VIRTIO_CONFIG_S_DRIVER_OK) != 0 && (status & VIRTIO_CONFIG_S_NEEDS_RESET) == 0);
  }
  ~Harness() {
    transport_.reset();
    device_.reset();
  }

  [[nodiscard]] bool failed() const {
    return (reg_read(*transport_, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET) != 0;
  }

  // Builds one request from the input and makes it available. Returns false
  // when it does not fit (no descriptors or buffer space left).
  bool add_request(Input& in) {
    Request r;
    const uint8_t type_sel = in.u8();
    switch (type_sel % 8) {
      case 0: case 4: r.type = VIRTIO_BLK_T_IN; break;
      case 1: case 5: r.type = VIRTIO_BLK_T_OUT; break;
      case 2: r.type = VIRTIO_BLK_T_FLUSH; break;
      case 3: r.type = VIRTIO_BLK_T_GET_ID; break;
      default: r.type = in.u32(); break;
    }
    const uint8_t sector_sel = in.u8();
    switch (sector_sel % 4) {
      case 0: r.sector = sector_sel >> 2; break;
      case 1: r.sector = capacity_ - std::min<uint64_t>(capacity_, sector_sel >> 2); break;
      case 2: r.sector = capacity_ + (sector_sel >> 2); break;
      default: r.sector = in.u64(); break;
    }
    const bool is_in = r.type == VIRTIO_BLK_T_IN;

    // The header: 16 bytes, or fewer/more, in one or two readable buffers.
    const uint8_t header_sel = in.u8();
    uint32_t header_len = 16;
    if (header_sel & 0x80) header_len = header_sel & 0x1f;
    uint8_t header[32] = {};
    std::memcpy(header, &r.type, 4);
    std::memcpy(header + 8, &r.sector, 8);
    const uint32_t split = (header_sel & 0x40) ? std::min<uint32_t>(header_len, (header_sel >> 2) & 0xf) : header_len;
    std::vector<std::vector<uint8_t>> contents;  // what to write into each buffer (empty: fill)
    auto add = [&](uint32_t len, bool writable, std::vector<uint8_t> bytes) {
      r.bufs.push_back(Ring::Buffer{0, len, writable});
      contents.push_back(std::move(bytes));
    };
    if (split > 0) add(split, false, std::vector<uint8_t>(header, header + split));
    if (header_len > split) add(header_len - split, false, std::vector<uint8_t>(header + split, header + header_len));

    // Data segments: their usual direction for the type unless flipped.
    const uint8_t data_sel = in.u8();
    const size_t segments = data_sel % 5;
    for (size_t i = 0; i < segments; ++i) {
      const uint8_t len_sel = in.u8();
      uint32_t len = 0;
      switch (len_sel % 5) {
        case 0: len = 512; break;
        case 1: len = 1024; break;
        case 2: len = 4096; break;
        case 3: len = 512 * (1 + (len_sel >> 3)); break;
        default: len = in.u16(); break;
      }
      const bool writable = is_in != ((len_sel & 0x4) != 0);
      std::vector<uint8_t> bytes;
      if (!writable) {
        // Data unlike the disk's, from a place of the pattern the input picks.
        const size_t from = (type_sel * 131 + i * 4099) % (pattern().size() - 0x10000);
        bytes.assign(pattern().begin() + static_cast<ptrdiff_t>(from),
                     pattern().begin() + static_cast<ptrdiff_t>(from + len));
      }
      add(len, writable, std::move(bytes));
    }

    // The status byte.
    const uint8_t status_sel = in.u8();
    switch (status_sel % 6) {
      case 0: case 1: add(1, true, {}); break;
      case 2: break;                                        // none
      case 3: add(1, false, {0}); break;                    // readable
      case 4: add(1 + (status_sel >> 3), true, {}); break;  // larger
      default:                                              // in the last data buffer
        if (!r.bufs.empty() && r.bufs.back().writable) {
          r.bufs.back().len += 1;
        } else {
          add(1, true, {});
        }
        break;
    }
    if (r.bufs.empty()) add(1, true, {});

    // Place the buffers.
    for (size_t i = 0; i < r.bufs.size(); ++i) {
      const uint64_t len = r.bufs[i].len;
      if (next_buffer_ + len > kMemSize) return false;
      r.bufs[i].addr = next_buffer_;
      if (!r.bufs[i].writable) {
        auto& bytes = contents[i];
        bytes.resize(len);
        FUZZ_CHECK(memory().write(next_buffer_, bytes).has_value());
      } else {
        FUZZ_CHECK(memory().fill(next_buffer_, 0xee, len).has_value());
      }
      next_buffer_ = (next_buffer_ + len + 15) & ~uint64_t{15};
    }
    // The request as the device sees it: the header is the first 16
    // readable bytes, wherever the driver put them (a short header takes
    // its rest from the data), and OUT data is every readable byte after it.
    std::vector<uint8_t> readable;
    for (size_t i = 0; i < r.bufs.size() && !r.bufs[i].writable; ++i) {
      readable.insert(readable.end(), contents[i].begin(), contents[i].end());
    }
    if (readable.size() >= 16) {
      std::memcpy(&r.type, readable.data(), 4);
      std::memcpy(&r.sector, readable.data() + 8, 8);
      r.out_data.assign(readable.begin() + 16, readable.end());
    }
    bool seen_writable = false;
    for (const auto& b : r.bufs) {
      if (!b.writable && seen_writable) r.structurally_valid = false;
      seen_writable |= b.writable;
    }
    if (r.bufs.size() > ring_.size()) return false;

    const uint8_t chain_sel = in.u8();
    const bool indirect = (chain_sel & 1) && indirect_used_ < 8;
    const int head = ring_.add_chain(r.bufs, indirect, kIndirect + 0x100 * indirect_used_);
    if (head < 0) return false;
    if (indirect) ++indirect_used_;
    pending_.emplace(static_cast<uint16_t>(head), std::move(r));
    ring_.publish(static_cast<uint16_t>(head));
    return true;
  }

  // Notifies, runs the device until every request is back, checks each.
  void flush(bool by_register) {
    if (pending_.empty()) {
      next_buffer_ = kBuffers;
      indirect_used_ = 0;
      return;
    }
    if (by_register) {
      reg_write(*transport_, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    } else {
      transport_->notify(0);
    }
    // A device over its budget finishes from the event loop.
    for (int i = 0; i < 16 && ring_.in_flight() > 0 && !failed(); ++i) {
      poll_once(loop_);
      check_used();
    }
    check_used();
    if (failed()) {
      // Only a chain the queue had to refuse may fail the device.
      bool any_invalid = false;
      for (const auto& [head, r] : pending_) any_invalid |= !r.structurally_valid;
      FUZZ_CHECK(any_invalid);
      return;
    }
    FUZZ_CHECK(pending_.empty());  // every request came back
    next_buffer_ = kBuffers;
    indirect_used_ = 0;
  }

 private:
  void check_used() {
    for (const Ring::Used& u : ring_.take_used()) {
      auto it = pending_.find(u.head);
      FUZZ_CHECK(it != pending_.end());
      check_request(it->second, u.len);
      pending_.erase(it);
    }
  }

  void check_request(const Request& r, uint32_t used_len) {
    FUZZ_CHECK(r.structurally_valid);  // else the device should have failed
    uint64_t readable = 0;
    uint64_t writable = 0;
    for (const auto& b : r.bufs) (b.writable ? writable : readable) += b.len;
    FUZZ_CHECK(used_len <= writable);
    if (writable == 0) {
      FUZZ_CHECK(used_len == 0);  // nowhere to put a status: returned untouched
      return;
    }
    // The status is the chain's last writable byte.
    std::optional<uint8_t> status;
    std::vector<uint8_t> data;  // the writable bytes before the status
    for (const auto& b : r.bufs) {
      if (!b.writable) continue;
      std::vector<uint8_t> bytes(b.len);
      FUZZ_CHECK(memory().read(b.addr, bytes).has_value());
      data.insert(data.end(), bytes.begin(), bytes.end());
    }
    status = data.back();
    data.pop_back();
    FUZZ_CHECK(*status == VIRTIO_BLK_S_OK || *status == VIRTIO_BLK_S_IOERR || *status == VIRTIO_BLK_S_UNSUPP);

    const uint8_t expected = expected_status(r, readable, writable);
    if (expected != *status) {
      std::fprintf(stderr, "type %u sector %llu readable %llu writable %llu: status %u, expected %u\n", r.type,
                   static_cast<unsigned long long>(r.sector), static_cast<unsigned long long>(readable),
                   static_cast<unsigned long long>(writable), *status, expected);
      FUZZ_CHECK(expected == *status);
    }
    if (r.type == VIRTIO_BLK_T_IN && *status == VIRTIO_BLK_S_OK) {
      FUZZ_CHECK(used_len == writable);
      const uint8_t* disk = model_.data() + r.sector * kSector;
      if (!data.empty() && std::memcmp(data.data(), disk, data.size()) != 0) {
        const auto diff = std::mismatch(data.begin(), data.end(), disk);
        std::fprintf(stderr, "read of sector %llu, %zu bytes: byte %td is %#x, the disk holds %#x\n",
                     static_cast<unsigned long long>(r.sector), data.size(), diff.first - data.begin(),
                     *diff.first, *diff.second);
        const bool read_matches_disk = false;
        FUZZ_CHECK(read_matches_disk);
      }
    } else if (r.type == VIRTIO_BLK_T_OUT && *status == VIRTIO_BLK_S_OK) {
      FUZZ_CHECK(used_len == 1);
      if (!r.out_data.empty()) std::memcpy(model_.data() + r.sector * kSector, r.out_data.data(), r.out_data.size());
    } else if (r.type == VIRTIO_BLK_T_GET_ID && *status == VIRTIO_BLK_S_OK) {
      const uint64_t n = std::min<uint64_t>(writable - 1, VIRTIO_BLK_ID_BYTES);
      FUZZ_CHECK(used_len == n + 1);
      FUZZ_CHECK(std::memcmp(data.data(), kDiskId, n) == 0);
    } else {
      FUZZ_CHECK(used_len == 1);
    }
  }

  uint8_t expected_status(const Request& r, uint64_t readable, uint64_t writable) const {
    if (readable < 16) return VIRTIO_BLK_S_IOERR;  // no whole header
    switch (r.type) {
      case VIRTIO_BLK_T_IN:
      case VIRTIO_BLK_T_OUT: {
        const bool is_in = r.type == VIRTIO_BLK_T_IN;
        const uint64_t len = is_in ? writable - 1 : readable - 16;
        if (len % kSector != 0 || len > (uint64_t{1} << 30) || r.sector > capacity_ ||
            len / kSector > capacity_ - r.sector) {
          return VIRTIO_BLK_S_IOERR;
        }
        if (!is_in && mode_ == virtio::DiskMode::kReadOnly) return VIRTIO_BLK_S_IOERR;
        return VIRTIO_BLK_S_OK;
      }
      case VIRTIO_BLK_T_FLUSH:
      case VIRTIO_BLK_T_GET_ID:
        return VIRTIO_BLK_S_OK;
      default:
        return VIRTIO_BLK_S_UNSUPP;
    }
  }

  virtio::DiskMode mode_;
  EventLoop loop_;
  Ring ring_;
  uint64_t capacity_ = 0;
  std::vector<uint8_t> model_;
  std::shared_ptr<CountingInterrupt> irq_ = std::make_shared<CountingInterrupt>();
  std::shared_ptr<virtio::Block> device_;
  std::unique_ptr<MmioTransport> transport_;
  std::map<uint16_t, Request> pending_;
  GuestAddress next_buffer_ = kBuffers;
  unsigned indirect_used_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_target();
  (void)memory();
  (void)disk_path(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t disk_sel = in.u8();
  const uint8_t setup = in.u8();
  const unsigned disk = disk_sel & 3;
  const virtio::DiskMode modes[] = {virtio::DiskMode::kReadOnly, virtio::DiskMode::kCopyOnWrite,
                                    virtio::DiskMode::kPersistent};
  const virtio::DiskMode mode = modes[((disk_sel >> 2) & 3) % 3];
  // A persistent disk keeps what the last run wrote: put the pattern back
  // before any mode reads it.
  static bool dirty[std::size(kDiskSizes)] = {};
  if (dirty[disk]) restore_disk(disk);
  dirty[disk] = mode == virtio::DiskMode::kPersistent;
  const uint16_t queue_sizes[] = {4, 8, 16, 64, 128, 256, 2, 1};
  const size_t fds_before = open_fd_count();
  {
    auto loop = EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    Harness h(disk, mode, std::move(*loop), setup & 1, queue_sizes[(setup >> 1) & 7]);
    for (size_t i = 0; i < kMaxRequests && !in.empty() && !h.failed(); ++i) {
      const uint8_t batch = in.u8();
      if (!h.add_request(in) || (batch & 1) == 0) h.flush(batch & 2);
    }
    if (!h.failed()) h.flush(false);
  }
  FUZZ_CHECK(open_fd_count() == fds_before);
  return 0;
}
