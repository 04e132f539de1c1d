#include "runtime/devices/virtio/rng/rng.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <catch2/catch.hpp>

#include "runtime/devices/virtio/mmio_transport.h"
#include "tests/support/loop_thread.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;

namespace {
class NullLine : public devices::InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};
}  // namespace

TEST_CASE("rng: fills every writable buffer it is given", "[unit]") {
  auto mem = GuestMemory::create({{0, 1 << 20}});
  REQUIRE(mem);
  auto rng = std::make_shared<Rng>();
  auto irq = std::make_shared<NullLine>();
  MmioTransport transport(rng, *mem, irq, nullptr);
  test::VirtqDriver vq(*mem, 8, 0x10000);
  test::MmioDriver driver(transport);
  const test::VirtqDriver* queues[] = {&vq};
  REQUIRE((driver.init(kFeatureVersion1, queues) & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  CHECK(rng->device_id() == VIRTIO_ID_RNG);
  REQUIRE(mem->fill(0x20000, 0, 256));
  vq.set_desc(0, 0x20000, 200, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
  vq.set_desc(1, 0x20100, 56, VRING_DESC_F_WRITE);
  vq.publish(0);
  driver.notify(0);
  REQUIRE(vq.used_idx() == 1);
  CHECK(vq.used_elem(0).len == 256);
  std::vector<uint8_t> bytes(200);
  REQUIRE(mem->read(0x20000, bytes));
  CHECK(std::count(bytes.begin(), bytes.end(), 0) < 20);  // 200 random bytes are not mostly zero
  CHECK(rng->bytes_served() == 256);
  CHECK(irq->count == 1);
}

TEST_CASE("rng: a read-only buffer gets nothing written", "[unit]") {
  auto mem = GuestMemory::create({{0, 1 << 20}});
  REQUIRE(mem);
  auto rng = std::make_shared<Rng>();
  MmioTransport transport(rng, *mem, std::make_shared<NullLine>(), nullptr);
  test::VirtqDriver vq(*mem, 8, 0x10000);
  test::MmioDriver driver(transport);
  const test::VirtqDriver* queues[] = {&vq};
  REQUIRE((driver.init(kFeatureVersion1, queues) & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  vq.set_desc(0, 0x20000, 64, 0);
  vq.publish(0);
  driver.notify(0);
  REQUIRE(vq.used_idx() == 1);
  CHECK(vq.used_elem(0).len == 0);
}

TEST_CASE("rng: a full queue is served kQueueBudget chains per turn of the event loop", "[unit]") {
  // A guest that keeps its queue full cannot hold the device thread: each
  // turn serves a budget of chains, then the loop serves its other fds.
  auto mem = GuestMemory::create({{0, 1 << 20}});
  REQUIRE(mem);
  auto loop = EventLoop::create();
  REQUIRE(loop);
  auto rng = std::make_shared<Rng>();
  MmioTransport transport(rng, *mem, std::make_shared<NullLine>(), &*loop);
  test::VirtqDriver vq(*mem, 256, 0x10000);
  test::MmioDriver driver(transport);
  const test::VirtqDriver* queues[] = {&vq};
  REQUIRE((driver.init(kFeatureVersion1, queues) & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  for (uint16_t i = 0; i < 200; ++i) {
    vq.set_desc(i, 0x40000 + i * 64ull, 64, VRING_DESC_F_WRITE);
    vq.publish(i);
  }
  transport.notify(0);
  CHECK(vq.used_idx() == kQueueBudget);
  {
    test::LoopThread thread(*loop);
    for (int i = 0; i < 200 && vq.used_idx() < 200; ++i) usleep(5000);
  }
  CHECK(vq.used_idx() == 200);
  CHECK(rng->bytes_served() == 200 * 64);
}

TEST_CASE("rng: a transport detached from its loop leaves the loop nothing of its own", "[unit]") {
  // The Machine's order: the loop's handlers hold the transport, so the
  // transport must leave the loop before the loop's destruction frees it.
  auto mem = GuestMemory::create({{0, 1 << 20}});
  REQUIRE(mem);
  auto loop = EventLoop::create();
  REQUIRE(loop);
  auto rng = std::make_shared<Rng>();
  auto transport = std::make_shared<MmioTransport>(rng, *mem, std::make_shared<NullLine>(), &*loop);
  test::VirtqDriver vq(*mem, 256, 0x10000);
  test::MmioDriver driver(*transport);
  const test::VirtqDriver* queues[] = {&vq};
  REQUIRE((driver.init(kFeatureVersion1, queues) & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  for (uint16_t i = 0; i < 100; ++i) {
    vq.set_desc(i, 0x40000 + i * 64ull, 64, VRING_DESC_F_WRITE);
    vq.publish(i);
  }
  transport->notify(0);  // over budget: the transport's kick is on the loop now
  REQUIRE(vq.used_idx() == kQueueBudget);
  transport->detach();
  CHECK_FALSE(transport->activated());
  transport->notify(0);  // detached: nothing more is served
  CHECK(vq.used_idx() == kQueueBudget);
  {
    test::LoopThread thread(*loop);  // the kick is gone: nothing runs
    usleep(100000);
  }
  CHECK(vq.used_idx() == kQueueBudget);
}
