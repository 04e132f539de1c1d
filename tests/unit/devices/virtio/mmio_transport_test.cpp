// The virtio-mmio transport (runtime/devices/virtio/mmio_transport.h) driven
// through 32-bit register accesses, as a guest driver would, with a fake
// device behind it that records every call.
#include "runtime/devices/virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <optional>

#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;
using husk::test::MmioDriver;
using husk::test::VirtqDriver;

namespace {

constexpr uint64_t kVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
constexpr uint64_t kEventIdx = uint64_t{1} << VIRTIO_RING_F_EVENT_IDX;
constexpr uint64_t kFeature0 = uint64_t{1} << 0;
constexpr uint64_t kOffered = kVersion1 | kEventIdx | kFeature0;
constexpr uint32_t S_ACK = VIRTIO_CONFIG_S_ACKNOWLEDGE;
constexpr uint32_t S_DRIVER = VIRTIO_CONFIG_S_DRIVER;
constexpr uint32_t S_FEATURES_OK = VIRTIO_CONFIG_S_FEATURES_OK;
constexpr uint32_t S_DRIVER_OK = VIRTIO_CONFIG_S_DRIVER_OK;
constexpr uint32_t S_FAILED = VIRTIO_CONFIG_S_FAILED;
constexpr uint32_t S_NEEDS_RESET = VIRTIO_CONFIG_S_NEEDS_RESET;

class FakeDevice final : public VirtioDevice {
 public:
  uint32_t device_id() const override { return VIRTIO_ID_RNG; }
  uint64_t features() const override { return kOffered; }
  std::vector<uint16_t> queue_max_sizes() const override { return {16, 8}; }

  void read_config(uint64_t offset, std::span<uint8_t> data) const override {
    last_config_read = offset;
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0x10 + offset + i);
  }
  void write_config(uint64_t offset, std::span<const uint8_t> data) override {
    config_writes.emplace_back(offset, std::vector<uint8_t>(data.begin(), data.end()));
  }

  Result<void> activate(DeviceContext context) override {
    ++activations;
    ctx = std::move(context);
    if (fail_activation) return fail("fake activation failure");
    return {};
  }
  Result<Served> process_queue(uint16_t queue) override {
    processed.push_back(queue);
    if (fail_on_process) return fail(*fail_on_process);
    if (more_turns > 0) {
      --more_turns;
      return Served::kMore;
    }
    return Served::kDone;
  }
  void reset() override { ++resets; }

  // The guest broke the device: the next process_queue says so.
  void break_on_next_notify(const std::string& why) { fail_on_process = why; }

  bool fail_activation = false;
  std::optional<std::string> fail_on_process;
  int more_turns = 0;  // how many calls answer kMore before kDone
  int activations = 0;
  int resets = 0;
  std::optional<DeviceContext> ctx;
  std::vector<uint16_t> processed;
  mutable std::optional<uint64_t> last_config_read;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> config_writes;
};

class CountingIrq final : public devices::InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};

struct Fixture {
  Fixture()
      : mem(make_memory()),
        device(std::make_shared<FakeDevice>()),
        irq(std::make_shared<CountingIrq>()),
        transport(device, mem, irq, nullptr),
        driver(transport),
        q0(mem, 16, 0x1000),
        q1(mem, 8, 0x4000) {}

  static GuestMemory make_memory() {
    auto m = GuestMemory::create({{0, 1 << 20}});
    REQUIRE(m);
    return std::move(*m);
  }

  // The full init sequence with both queues; returns the final status.
  uint32_t init(uint64_t features = kVersion1 | kEventIdx) {
    const std::array<const VirtqDriver*, 2> queues{&q0, &q1};
    return driver.init(features, queues);
  }

  // The transport's queues, as handed to the device at activation.
  std::vector<Queue>& queues() {
    REQUIRE(device->ctx);
    return *device->ctx->queues;
  }

  GuestMemory mem;
  std::shared_ptr<FakeDevice> device;
  std::shared_ptr<CountingIrq> irq;
  MmioTransport transport;
  MmioDriver driver;
  VirtqDriver q0;
  VirtqDriver q1;
};

constexpr uint32_t kReady = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;

}  // namespace

TEST_CASE("mmio: identification registers", "[unit]") {
  Fixture f;
  CHECK(f.driver.read(VIRTIO_MMIO_MAGIC_VALUE) == 0x74726976);  // "virt"
  CHECK(f.driver.read(VIRTIO_MMIO_VERSION) == 2);
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_RNG);
  CHECK(f.driver.read(VIRTIO_MMIO_VENDOR_ID) == 0x6b737568);  // "husk"
  CHECK(f.driver.read(VIRTIO_MMIO_STATUS) == 0);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0);
  // No shared memory regions: length reads as -1 (4.2.2).
  CHECK(f.driver.read(VIRTIO_MMIO_SHM_LEN_LOW) == 0xffffffff);
  CHECK(f.driver.read(VIRTIO_MMIO_SHM_LEN_HIGH) == 0xffffffff);
  CHECK(f.transport.queue_count() == 2);
}

TEST_CASE("mmio: device features by selector", "[unit]") {
  Fixture f;
  f.driver.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_FEATURES) == static_cast<uint32_t>(kOffered));
  f.driver.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_FEATURES) == static_cast<uint32_t>(kOffered >> 32));
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_FEATURES) == 1);  // VERSION_1 is bit 32
  f.driver.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_FEATURES) == 0);
  f.driver.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
  CHECK(f.driver.read(VIRTIO_MMIO_DEVICE_FEATURES) == 0);
  CHECK(f.driver.device_features() == kOffered);
}

TEST_CASE("mmio: the status register walks the init steps in order", "[unit]") {
  Fixture f;
  f.driver.set_status(S_ACK);
  CHECK(f.driver.status() == S_ACK);
  f.driver.set_status(S_ACK | S_DRIVER);
  CHECK(f.driver.status() == (S_ACK | S_DRIVER));
  f.driver.set_driver_features(kVersion1);
  f.driver.set_status(S_ACK | S_DRIVER | S_FEATURES_OK);
  CHECK(f.driver.status() == (S_ACK | S_DRIVER | S_FEATURES_OK));
  f.driver.set_status(kReady);
  CHECK(f.driver.status() == kReady);
  CHECK(f.transport.activated());
  CHECK(f.transport.status() == kReady);
}

TEST_CASE("mmio: skipping or undoing a status step is refused", "[unit]") {
  Fixture f;
  SECTION("DRIVER before ACKNOWLEDGE") {
    f.driver.set_status(S_DRIVER);
    CHECK(f.driver.status() == 0);
    f.driver.set_status(S_ACK | S_DRIVER);  // two steps at once
    CHECK(f.driver.status() == 0);
  }
  SECTION("FEATURES_OK before DRIVER") {
    f.driver.set_status(S_ACK);
    f.driver.set_driver_features(kVersion1);
    f.driver.set_status(S_ACK | S_FEATURES_OK);
    CHECK(f.driver.status() == S_ACK);
  }
  SECTION("DRIVER_OK before FEATURES_OK") {
    f.driver.set_status(S_ACK);
    f.driver.set_status(S_ACK | S_DRIVER);
    f.driver.set_status(S_ACK | S_DRIVER | S_DRIVER_OK);
    CHECK(f.driver.status() == (S_ACK | S_DRIVER));
    CHECK_FALSE(f.transport.activated());
  }
  SECTION("dropping a bit") {
    REQUIRE(f.driver.negotiate(kVersion1));
    f.driver.set_status(S_ACK | S_DRIVER);
    CHECK(f.driver.status() == (S_ACK | S_DRIVER | S_FEATURES_OK));
  }
  SECTION("unknown bits") {
    f.driver.set_status(S_ACK | 0x10);
    CHECK(f.driver.status() == 0);
  }
  CHECK(f.device->activations == 0);
}

TEST_CASE("mmio: FEATURES_OK needs VERSION_1 and only offered features", "[unit]") {
  Fixture f;
  SECTION("without VERSION_1") { CHECK_FALSE(f.driver.negotiate(kEventIdx)); }
  SECTION("with a feature the device did not offer") {
    CHECK_FALSE(f.driver.negotiate(kVersion1 | (uint64_t{1} << 5)));
  }
  SECTION("with an unoffered high feature") {
    CHECK_FALSE(f.driver.negotiate(kVersion1 | (uint64_t{1} << 40)));
  }
  // FEATURES_OK stays clear and the driver may try again (3.1.1 step 6).
  CHECK(f.driver.status() == (S_ACK | S_DRIVER));
  f.driver.set_driver_features(kVersion1 | kFeature0);
  f.driver.add_status(S_FEATURES_OK);
  CHECK(f.driver.status() == (S_ACK | S_DRIVER | S_FEATURES_OK));
}

TEST_CASE("mmio: driver features are frozen after FEATURES_OK", "[unit]") {
  Fixture f;
  REQUIRE(f.driver.negotiate(kVersion1));
  f.driver.set_driver_features(kOffered);  // too late: ignored
  f.driver.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  f.driver.write(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
  f.driver.setup_queue(0, f.q0);
  f.driver.add_status(S_DRIVER_OK);
  REQUIRE(f.device->ctx);
  CHECK(f.device->ctx->acked_features == kVersion1);
}

TEST_CASE("mmio: driver feature selectors past 1 select nothing", "[unit]") {
  Fixture f;
  f.driver.set_status(S_ACK);
  f.driver.add_status(S_DRIVER);
  f.driver.set_driver_features(kVersion1);
  for (uint32_t sel : {2u, 32u, 64u, 0xffffffffu}) {
    f.driver.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
    f.driver.write(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
  }
  f.driver.add_status(S_FEATURES_OK);
  REQUIRE(f.driver.status() == (S_ACK | S_DRIVER | S_FEATURES_OK));
  f.driver.add_status(S_DRIVER_OK);
  REQUIRE(f.device->ctx);
  CHECK(f.device->ctx->acked_features == kVersion1);
}

TEST_CASE("mmio: FAILED can be set at any time", "[unit]") {
  Fixture f;
  SECTION("at reset") {
    f.driver.set_status(S_FAILED);
    CHECK(f.driver.status() == S_FAILED);
  }
  SECTION("while negotiating") {
    f.driver.set_status(S_ACK);
    f.driver.add_status(S_FAILED);
    CHECK(f.driver.status() == (S_ACK | S_FAILED));
    f.driver.add_status(S_DRIVER);  // no way forward once failed
    CHECK(f.driver.status() == (S_ACK | S_FAILED));
  }
  SECTION("after DRIVER_OK") {
    REQUIRE(f.init() == kReady);
    f.driver.add_status(S_FAILED);
    CHECK(f.driver.status() == (kReady | S_FAILED));
  }
}

TEST_CASE("mmio: writing 0 to status resets device, features and queues", "[unit]") {
  Fixture f;
  REQUIRE(f.init() == kReady);
  (void)f.device->ctx->signal_used(0);  // nothing used: no interrupt
  f.device->break_on_next_notify("guest did something wrong");
  f.transport.notify(0);
  REQUIRE(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) != 0);
  std::vector<Queue>& queues = f.queues();
  CHECK(f.device->resets == 1);

  f.driver.set_status(0);
  CHECK(f.driver.status() == 0);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0);
  CHECK_FALSE(f.transport.activated());
  for (const Queue& q : queues) {
    CHECK_FALSE(q.ready());
    CHECK(q.size() == q.max_size());
    CHECK(q.desc_table() == 0);
    CHECK(q.avail_ring() == 0);
    CHECK(q.used_ring() == 0);
  }
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 0);
  CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);

  // The next negotiation starts from no features at all.
  f.driver.set_status(S_ACK);
  f.driver.add_status(S_DRIVER);
  f.driver.add_status(S_FEATURES_OK);
  CHECK(f.driver.status() == (S_ACK | S_DRIVER));  // VERSION_1 is gone

  // And a second full init activates again.
  REQUIRE(f.init(kVersion1) == kReady);
  CHECK(f.device->activations == 2);
  CHECK(f.device->ctx->acked_features == kVersion1);
}

TEST_CASE("mmio: reset of an activated device resets the device", "[unit]") {
  Fixture f;
  REQUIRE(f.init() == kReady);
  f.driver.set_status(0);
  CHECK(f.device->resets == 1);
  f.driver.set_status(0);  // resetting an idle device does not call it again
  CHECK(f.device->resets == 1);
}

TEST_CASE("mmio: queue registers only work between FEATURES_OK and DRIVER_OK", "[unit]") {
  Fixture f;
  auto try_setup = [&] { f.driver.setup_queue(0, f.q0); };
  SECTION("before FEATURES_OK") {
    f.driver.set_status(S_ACK);
    f.driver.add_status(S_DRIVER);
    try_setup();
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
    f.driver.set_driver_features(kVersion1);
    f.driver.add_status(S_FEATURES_OK);
    f.driver.add_status(S_DRIVER_OK);
    // The early writes were dropped: queue 0 is as it was at reset.
    CHECK_FALSE(f.queues()[0].ready());
    CHECK(f.queues()[0].desc_table() == 0);
  }
  SECTION("after DRIVER_OK") {
    REQUIRE(f.driver.negotiate(kVersion1));
    f.driver.add_status(S_DRIVER_OK);
    try_setup();
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
    CHECK(f.queues()[0].desc_table() == 0);
    CHECK(f.queues()[0].size() == 16);
  }
  SECTION("after FAILED") {
    REQUIRE(f.driver.negotiate(kVersion1));
    f.driver.add_status(S_FAILED);
    try_setup();
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
  }
  SECTION("in the window they take effect") {
    REQUIRE(f.driver.negotiate(kVersion1));
    try_setup();
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 1);
    f.driver.write(VIRTIO_MMIO_QUEUE_READY, 0);
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
    f.driver.write(VIRTIO_MMIO_QUEUE_READY, 1);
    f.driver.add_status(S_DRIVER_OK);
    Queue& q = f.queues()[0];
    CHECK(q.ready());
    CHECK(q.size() == 16);
    CHECK(q.desc_table() == f.q0.desc_table());
    CHECK(q.avail_ring() == f.q0.avail_ring());
    CHECK(q.used_ring() == f.q0.used_ring());
  }
}

TEST_CASE("mmio: 64-bit queue addresses are assembled from both halves", "[unit]") {
  Fixture f;
  REQUIRE(f.driver.negotiate(kVersion1));
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 1);
  f.driver.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x12);
  f.driver.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x3450);
  f.driver.write(VIRTIO_MMIO_QUEUE_NUM, 0x10010);  // above 16 bits: invalid, not 16
  f.driver.add_status(S_DRIVER_OK);
  // Queue 1 is not ready, so it is not validated; its values stay put.
  CHECK(f.queues()[1].desc_table() == 0x1200003450);
  CHECK(f.queues()[1].size() == 0);
  CHECK(f.transport.activated());
}

TEST_CASE("mmio: QUEUE_NUM_MAX per queue, nothing past the last queue", "[unit]") {
  Fixture f;
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 0);
  CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_NUM_MAX) == 16);
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 1);
  CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_NUM_MAX) == 8);
  for (uint32_t sel : {2u, 0xffffu, 0xffffffffu}) {
    f.driver.write(VIRTIO_MMIO_QUEUE_SEL, sel);
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_NUM_MAX) == 0);
    CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
  }
  // Set-up writes to an absent queue go nowhere.
  REQUIRE(f.driver.negotiate(kVersion1));
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 2);
  f.driver.write(VIRTIO_MMIO_QUEUE_READY, 1);
  CHECK(f.driver.read(VIRTIO_MMIO_QUEUE_READY) == 0);
}

TEST_CASE("mmio: DRIVER_OK activates the device once with the acked features", "[unit]") {
  Fixture f;
  REQUIRE(f.init(kVersion1 | kEventIdx | kFeature0) == kReady);
  CHECK(f.device->activations == 1);
  REQUIRE(f.device->ctx);
  CHECK(f.device->ctx->acked_features == (kVersion1 | kEventIdx | kFeature0));
  CHECK(f.device->ctx->memory == &f.mem);
  CHECK(f.device->ctx->queues->size() == 2);
  f.driver.set_status(kReady);  // again: no second activation
  CHECK(f.device->activations == 1);
  CHECK(f.irq->count == 0);
  // Without an event loop, device fds are refused rather than crashing.
  CHECK_FALSE(f.device->ctx->add_fd(0, 0, [](uint32_t) -> Result<void> { return {}; }));
}

TEST_CASE("mmio: a bad queue at DRIVER_OK asks for reset instead of activating", "[unit]") {
  Fixture f;
  REQUIRE(f.driver.negotiate(kVersion1));
  SECTION("misaligned descriptor table") {
    f.driver.setup_queue(0, f.q0);
    f.driver.write(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(f.q0.desc_table() + 8));
  }
  SECTION("size not a power of two") {
    f.driver.setup_queue(0, f.q0);
    f.driver.write(VIRTIO_MMIO_QUEUE_NUM, 12);
  }
  SECTION("size above 16 bits, which truncated would look valid") {
    f.driver.setup_queue(0, f.q0);
    f.driver.write(VIRTIO_MMIO_QUEUE_NUM, 0x10010);
  }
  SECTION("size above QUEUE_NUM_MAX") {
    f.driver.setup_queue(1, f.q0);  // 16 entries on the 8-entry queue
  }
  SECTION("used ring outside guest memory") {
    f.driver.setup_queue(0, f.q0);
    f.driver.write(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
  }
  const uint32_t generation = f.driver.read(VIRTIO_MMIO_CONFIG_GENERATION);
  f.driver.add_status(S_DRIVER_OK);
  CHECK(f.driver.status() == (kReady | S_NEEDS_RESET));
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_CONFIG);
  CHECK(f.irq->count == 1);
  CHECK(f.driver.read(VIRTIO_MMIO_CONFIG_GENERATION) != generation);
  CHECK(f.device->activations == 0);
  CHECK_FALSE(f.transport.activated());
  f.driver.notify(0);
  CHECK(f.device->processed.empty());
  // A reset clears it all and the driver can start over.
  f.driver.set_status(0);
  CHECK(f.driver.status() == 0);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0);
  REQUIRE(f.init() == kReady);
  CHECK(f.device->activations == 1);
}

TEST_CASE("mmio: a device that fails asks for reset", "[unit]") {
  Fixture f;
  SECTION("from its activate()") {
    f.device->fail_activation = true;
    CHECK(f.init() == (kReady | S_NEEDS_RESET));
    CHECK(f.device->activations == 1);
    CHECK(f.device->resets == 0);  // never activated, nothing to reset
  }
  SECTION("by an error from process_queue, and is reset after the call") {
    REQUIRE(f.init() == kReady);
    f.device->break_on_next_notify("bad request");
    f.transport.notify(0);
    CHECK(f.driver.status() == (kReady | S_NEEDS_RESET));
    CHECK(f.transport.device_state() == DeviceState::kFailed);
    CHECK(f.device->resets == 1);
    f.transport.notify(0);  // failed: the device is not called again
    CHECK(f.device->resets == 1);
    CHECK(f.device->processed.size() == 1);
    f.device->processed.clear();
  }
  CHECK_FALSE(f.transport.activated());
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_CONFIG);
  CHECK(f.irq->count == 1);
  f.driver.notify(0);
  CHECK(f.device->processed.empty());
  // NEEDS_RESET sticks until the driver resets: re-writing status keeps it.
  f.driver.set_status(kReady);
  CHECK((f.driver.status() & S_NEEDS_RESET) != 0);
}

TEST_CASE("mmio: QUEUE_NOTIFY reaches process_queue only once activated", "[unit]") {
  Fixture f;
  f.driver.notify(0);
  REQUIRE(f.driver.negotiate(kVersion1));
  f.driver.setup_queue(0, f.q0);  // queue 1 is left unready
  f.driver.notify(0);
  CHECK(f.device->processed.empty());
  f.driver.add_status(S_DRIVER_OK);
  REQUIRE(f.transport.activated());
  f.driver.notify(0);
  f.driver.notify(1);           // not ready
  f.driver.notify(2);           // no such queue
  f.driver.notify(0xffffffff);  // nor this
  f.transport.notify(0);        // the ioeventfd path
  f.transport.notify(7);
  CHECK(f.device->processed == std::vector<uint16_t>{0, 0});
  f.driver.set_status(0);
  f.driver.notify(0);
  CHECK(f.device->processed.size() == 2);
}

TEST_CASE("mmio: signal_used raises the vring interrupt, INTERRUPT_ACK clears it", "[unit]") {
  Fixture f;
  REQUIRE(f.init(kVersion1) == kReady);
  Queue& q = f.queues()[0];
  auto complete_one = [&] {
    f.q0.set_desc(0, 0x10000, 8, VRING_DESC_F_WRITE);
    f.q0.publish(0);
    auto chain = q.pop(f.mem);
    REQUIRE(chain);
    REQUIRE(chain->has_value());
    REQUIRE(q.add_used(f.mem, (*chain)->head, 8));
  };
  (void)f.device->ctx->signal_used(0);  // nothing used yet
  CHECK(f.irq->count == 0);
  complete_one();
  (void)f.device->ctx->signal_used(0);
  CHECK(f.irq->count == 1);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING);
  f.driver.write(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);  // the other bit
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == VIRTIO_MMIO_INT_VRING);
  f.driver.write(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0);

  f.q0.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  complete_one();
  (void)f.device->ctx->signal_used(0);
  CHECK(f.irq->count == 1);
  CHECK(f.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) == 0);
  (void)f.device->ctx->signal_used(9);  // no such queue: ignored
  CHECK(f.irq->count == 1);
}

TEST_CASE("mmio: with EVENT_IDX acked, signal_used follows used_event", "[unit]") {
  Fixture f;
  REQUIRE(f.init(kVersion1 | kEventIdx) == kReady);
  Queue& q = f.queues()[0];
  f.q0.set_desc(0, 0x10000, 8, VRING_DESC_F_WRITE);
  f.q0.set_used_event(1);  // interrupt once the entry at index 1 is used
  for (int i = 0; i < 3; ++i) {
    f.q0.publish(0);
    auto chain = q.pop(f.mem);
    REQUIRE(chain);
    REQUIRE(chain->has_value());
    REQUIRE(q.add_used(f.mem, 0, 8));
    (void)f.device->ctx->signal_used(0);
    CHECK(f.irq->count == (i == 0 ? 0 : 1));  // only the step to index 2
  }
}

TEST_CASE("mmio: register accesses that are not 32 bits wide are ignored", "[unit]") {
  Fixture f;
  for (size_t width : {1u, 2u, 8u}) {
    std::array<uint8_t, 8> buf{};
    buf.fill(0xaa);
    f.transport.read(VIRTIO_MMIO_MAGIC_VALUE, std::span(buf.data(), width));
    CHECK(std::all_of(buf.begin(), buf.begin() + width, [](uint8_t b) { return b == 0; }));
    const std::array<uint8_t, 8> ack{S_ACK, 0, 0, 0, 0, 0, 0, 0};
    f.transport.write(VIRTIO_MMIO_STATUS, std::span(ack.data(), width));
    CHECK(f.driver.status() == 0);
  }
}

TEST_CASE("mmio: config space accesses go to the device with their offsets", "[unit]") {
  Fixture f;
  std::array<uint8_t, 4> word{};
  f.transport.read(VIRTIO_MMIO_CONFIG + 4, word);
  CHECK(f.device->last_config_read == 4);
  CHECK(word == std::array<uint8_t, 4>{0x14, 0x15, 0x16, 0x17});
  std::array<uint8_t, 1> byte{};
  f.transport.read(VIRTIO_MMIO_CONFIG + 0x21, byte);  // byte access is fine here
  CHECK(f.device->last_config_read == 0x21);
  CHECK(byte[0] == 0x31);

  const std::array<uint8_t, 2> data{0xbe, 0xef};
  f.transport.write(VIRTIO_MMIO_CONFIG + 2, data);
  REQUIRE(f.device->config_writes.size() == 1);
  CHECK(f.device->config_writes[0].first == 2);
  CHECK(f.device->config_writes[0].second == std::vector<uint8_t>{0xbe, 0xef});
  // Registers below the config space never reach the device.
  f.transport.write(VIRTIO_MMIO_CONFIG - 4, data);
  CHECK(f.device->config_writes.size() == 1);
}

TEST_CASE("mmio: a device out of budget is called again until it is done", "[unit]") {
  Fixture f;
  REQUIRE(f.init() == kReady);
  f.device->more_turns = 3;
  f.transport.notify(0);
  // Without an event loop the transport goes on at once.
  CHECK(f.device->processed == std::vector<uint16_t>{0, 0, 0, 0});
}

TEST_CASE("mmio: the transport's state is plain data", "[unit]") {
  Fixture f;
  CHECK(f.transport.state().device == DeviceState::kInactive);
  REQUIRE(f.init() == kReady);
  const TransportState s = f.transport.state();
  CHECK(s.device == DeviceState::kActive);
  CHECK(s.status == kReady);
  REQUIRE(s.queues.size() == 2);
  CHECK(s.queues[0].ready);
  CHECK(s.queues[0].size == 16);
  CHECK(s.queues[0].desc_table == f.q0.desc_table());
  // A queue rebuilt from its state is the same queue.
  auto q = Queue::restore(16, s.queues[0]);
  REQUIRE(q);
  CHECK(q->state().avail_ring == f.q0.avail_ring());
  CHECK_FALSE(Queue::restore(8, s.queues[0]));  // does not fit a smaller queue
}

TEST_CASE("mmio: restore puts registers and queues back and activates a device that was active", "[unit]") {
  Fixture f;
  REQUIRE((f.init() & S_DRIVER_OK) != 0);
  f.driver.write(VIRTIO_MMIO_QUEUE_SEL, 1);
  const TransportState saved = f.transport.state();
  REQUIRE(saved.device == DeviceState::kActive);

  auto device = std::make_shared<FakeDevice>();
  MmioTransport restored(device, f.mem, f.irq, nullptr);
  REQUIRE(restored.restore(saved));
  CHECK(device->activations == 1);
  CHECK(restored.activated());
  const TransportState now = restored.state();
  CHECK(now.status == saved.status);
  CHECK(now.driver_features == saved.driver_features);
  CHECK(now.queue_sel == 1);
  REQUIRE(now.queues.size() == 2);
  CHECK(now.queues[0].desc_table == saved.queues[0].desc_table);
  CHECK(now.queues[1].used_ring == saved.queues[1].used_ring);
  CHECK(now.queues[0].event_idx);
  // The guest sees the registers it left.
  MmioDriver driver(restored);
  CHECK(driver.status() == saved.status);

  // Only once, and only into a device that has not run.
  auto again = restored.restore(saved);
  REQUIRE_FALSE(again);
  CHECK(again.error().message.find("only before it ran") != std::string::npos);
}

TEST_CASE("mmio: restore refuses a state that does not fit the device", "[unit]") {
  Fixture f;
  REQUIRE((f.init() & S_DRIVER_OK) != 0);
  TransportState saved = f.transport.state();

  SECTION("another queue count") {
    saved.queues.pop_back();
    MmioTransport restored(std::make_shared<FakeDevice>(), f.mem, f.irq, nullptr);
    auto refused = restored.restore(saved);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("the snapshot has 1 queues, the device 2") != std::string::npos);
  }
  SECTION("a queue larger than the device's") {
    saved.queues[1].size = 16;  // its maximum is 8
    auto device = std::make_shared<FakeDevice>();
    MmioTransport restored(device, f.mem, f.irq, nullptr);
    REQUIRE_FALSE(restored.restore(saved));
    CHECK(device->activations == 0);
  }
  SECTION("a device that cannot be activated again") {
    auto device = std::make_shared<FakeDevice>();
    device->fail_activation = true;
    MmioTransport restored(device, f.mem, f.irq, nullptr);
    auto refused = restored.restore(saved);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message.find("did not come back") != std::string::npos);
  }
}
