// libFuzzer target for the virtio-mmio transport (virtio 1.2, 4.2.2) in
// front of each real device: virtio-blk on a small temporary disk image,
// virtio-rng and virtio-vsock with a real listening Unix socket. The input
// is a program of what a hostile guest can do: register reads and writes of
// any offset and width (config space included), queue notifications, writes
// to guest memory, descriptor chains on the rings, and a correct driver
// init with fuzzed features and queue sizes to get past DRIVER_OK quickly;
// the device's event loop is stepped in between.
// Nothing may crash, leak, hang, touch memory outside the guest's, or show
// the driver a register the spec does not allow (checked: magic, version,
// device id, status always a prefix of the init sequence).
//
// Input: u8 device (0 blk, 1 rng, 2 vsock), u8 disk (blk: mode, size), then
// ops until the input ends; see run_op. Build and run: `make fuzz`.
#include <linux/virtio_ids.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <memory>
#include <optional>

#include "runtime/devices/virtio/block/block.h"
#include "runtime/devices/virtio/rng/rng.h"
#include "runtime/devices/virtio/vsock/vsock.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk;
using namespace husk::fuzz;
using virtio::MmioTransport;

// Guest memory: 64 KiB from 0, a hole, and one more page, so buffers can
// run off a region's end or fall into the hole.
constexpr uint64_t kLowSize = 0x10000;
constexpr GuestAddress kHighBase = 0x11000;
constexpr uint64_t kHighSize = 0x1000;
constexpr GuestAddress kRingBase = 0x0;  // queue i at kRingBase + i * 0x1000
constexpr GuestAddress kIndirectBase = 0x3000;
constexpr GuestAddress kBufferBase = 0x4000;
constexpr size_t kMaxOps = 512;
constexpr size_t kMaxClients = 4;

const GuestMemory& memory() {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{0, kLowSize}, {kHighBase, kHighSize}});
    FUZZ_CHECK(m.has_value());
    return new GuestMemory(std::move(*m));
  }();
  return *mem;
}

// Disk images made once: sizes of 1, 1 (1000 bytes: a partial sector at
// the end), 8 and 128 sectors, with a recognisable pattern.
const std::string& disk_path(unsigned index) {
  static std::vector<std::string>* paths = [] {
    auto* p = new std::vector<std::string>();
    for (size_t size : {512u, 1000u, 4096u, 65536u}) {
      std::vector<uint8_t> bytes(size);
      for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + i / 512);
      p->push_back(scratch().write("disk" + std::to_string(size), bytes));
    }
    return p;
  }();
  return (*paths)[index % paths->size()];
}

std::shared_ptr<virtio::VirtioDevice> make_device(uint8_t kind, uint8_t disk, const std::string& uds) {
  switch (kind % 3) {
    case 0: {
      const virtio::DiskMode modes[] = {virtio::DiskMode::kReadOnly, virtio::DiskMode::kCopyOnWrite,
                                        virtio::DiskMode::kPersistent};
      auto image = virtio::DiskImage::open(disk_path(disk >> 2), modes[(disk & 3) % 3]);
      FUZZ_CHECK(image.has_value());
      return std::make_shared<virtio::Block>(std::move(*image), "fuzz-disk");
    }
    case 1:
      return std::make_shared<virtio::Rng>();
    default: {
      auto v = virtio::Vsock::create(3, uds);
      FUZZ_CHECK(v.has_value());
      return *v;
    }
  }
}

uint32_t expected_device_id(uint8_t kind) {
  switch (kind % 3) {
    case 0: return VIRTIO_ID_BLOCK;
    case 1: return VIRTIO_ID_RNG;
    default: return VIRTIO_ID_VSOCK;
  }
}

UniqueFd connect_client(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), std::min(path.size(), sizeof(a.sun_path) - 1));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  return fd;
}

struct Session {
  uint8_t kind;
  std::string uds;
  EventLoop loop;
  std::shared_ptr<virtio::VirtioDevice> device;
  std::shared_ptr<CountingInterrupt> irq = std::make_shared<CountingInterrupt>();
  std::unique_ptr<MmioTransport> transport;
  std::vector<std::unique_ptr<Ring>> rings;
  std::vector<UniqueFd> clients;

  Session(uint8_t k, uint8_t disk, std::string path, EventLoop l)
      : kind(k), uds(std::move(path)), loop(std::move(l)), device(make_device(k, disk, uds)) {
    transport = std::make_unique<MmioTransport>(device, memory(), irq, &loop);
    for (size_t i = 0; i < device->queue_max_sizes().size(); ++i) {
      rings.push_back(std::make_unique<Ring>(memory(), 16, kRingBase + 0x1000 * i));
    }
  }
  ~Session() {
    // The transport before the device and the loop it uses; clients last so
    // their hang-ups do not matter.
    transport.reset();
    device.reset();
  }

  void check_registers() {
    FUZZ_CHECK(reg_read(*transport, VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976);
    FUZZ_CHECK(reg_read(*transport, VIRTIO_MMIO_VERSION) == 2);
    FUZZ_CHECK(reg_read(*transport, VIRTIO_MMIO_DEVICE_ID) == expected_device_id(kind));
    const uint32_t status = reg_read(*transport, VIRTIO_MMIO_STATUS);
    if (!plausible_status(status)) {
      std::fprintf(stderr, "status register %#x\n", status);
      FUZZ_CHECK(plausible_status(status));
    }
  }

  GuestAddress buffer_address(Input& in) {
    const uint8_t how = in.u8();
    if (how & 0x80) return in.u32();  // anywhere: holes, ring pages, past the end
    return kBufferBase + in.u16() % (kLowSize - kBufferBase);
  }

  void run_op(Input& in) {
    const uint8_t op = in.u8();
    switch (op % 12) {
      case 0: {  // a 32-bit register write
        const uint64_t offset = uint64_t{in.u8()} * 4;
        reg_write(*transport, offset, in.u32());
        break;
      }
      case 1: {  // a read of any width, any offset in the window
        const uint64_t offset = in.u16() % MmioTransport::kWindowSize;
        uint8_t buf[8];
        const size_t width = size_t{1} << (in.u8() % 4);
        transport->read(offset, std::span<uint8_t>(buf, width));
        break;
      }
      case 2: {  // a write of any width, any offset in the window
        const uint64_t offset = in.u16() % MmioTransport::kWindowSize;
        const size_t width = size_t{1} << (in.u8() % 4);
        const uint64_t value = in.u64();
        transport->write(offset, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), width));
        break;
      }
      case 3:  // an ioeventfd notification, for any queue number
        transport->notify(in.u8());
        break;
      case 4: {  // guest memory
        const GuestAddress at = in.u16() % kLowSize;
        const auto data = in.bytes(in.u8());
        (void)memory().write(at, data);  // may run past the region: refused
        break;
      }
      case 5: {  // a correct init with fuzzed features and queue sizes
        const uint8_t which = in.u8();
        const uint64_t mask = in.u64();
        const uint64_t offered = device_features(*transport);
        const uint64_t features = (which & 1) ? mask : (offered & (mask | virtio::kFeatureVersion1));
        std::vector<Ring*> setup;
        for (size_t i = 0; i < rings.size(); ++i) {
          const uint16_t sizes[] = {1, 2, 4, 8, 16, 32, 64, 3};
          rings[i] = std::make_unique<Ring>(memory(), sizes[in.u8() % 8], kRingBase + 0x1000 * i);
          setup.push_back(rings[i].get());
        }
        (void)driver_init(*transport, features, setup);
        break;
      }
      case 6: {  // a descriptor chain on a queue, published and maybe notified
        const size_t q = in.u8() % rings.size();
        const size_t n = 1 + in.u8() % 4;
        std::vector<Ring::Buffer> bufs;
        for (size_t i = 0; i < n; ++i) {
          const GuestAddress addr = buffer_address(in);
          const uint32_t len = in.u16();
          bufs.push_back(Ring::Buffer{addr, len, in.flag()});
        }
        const uint8_t mode = in.u8();
        const int head = rings[q]->add_chain(bufs, mode & 1, kIndirectBase + 0x400 * q);
        if (head >= 0) rings[q]->publish(static_cast<uint16_t>(head));
        if (mode & 2) reg_write(*transport, VIRTIO_MMIO_QUEUE_NOTIFY, static_cast<uint32_t>(q));
        break;
      }
      case 7:  // the device's event loop: sockets, timers, deferred queue work
        poll_once(loop);
        break;
      case 8: {  // event index words and avail flags
        const size_t q = in.u8() % rings.size();
        rings[q]->set_used_event(in.u16());
        rings[q]->set_avail_flags(in.u16());
        break;
      }
      case 9:  // the interrupt handler: read the status, acknowledge it
        reg_write(*transport, VIRTIO_MMIO_INTERRUPT_ACK, reg_read(*transport, VIRTIO_MMIO_INTERRUPT_STATUS));
        for (auto& r : rings) (void)r->take_used(false);  // the guest may have rewritten them
        break;
      case 10:  // a status write of any value
        reg_write(*transport, VIRTIO_MMIO_STATUS, in.u8());
        break;
      case 11: {  // a host client of the vsock socket (other devices: ignored)
        if (kind % 3 != 2) break;
        const auto data = in.bytes(in.u8() % 32);
        if (clients.size() < kMaxClients) {
          UniqueFd c = connect_client(uds);
          if (c) {
            (void)!::send(c.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            clients.push_back(std::move(c));
          }
        }
        break;
      }
    }
  }
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
  const uint8_t kind = in.u8();
  const uint8_t disk = in.u8();
  (void)memory().fill(0, 0, kLowSize);
  (void)memory().fill(kHighBase, 0, kHighSize);
  const size_t fds_before = open_fd_count();
  {
    auto loop = EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    Session s(kind, disk, scratch().file("m.sock"), std::move(*loop));
    s.check_registers();
    for (size_t i = 0; i < kMaxOps && !in.empty(); ++i) {
      s.run_op(in);
      s.check_registers();
    }
    poll_once(s.loop);
    s.check_registers();
  }
  // Every socket, eventfd, timer and disk fd of the device is gone with it.
  FUZZ_CHECK(open_fd_count() == fds_before);
  return 0;
}
