// encode_state / decode_state (runtime/snapshot/snapshot_codec.h): an exact
// round trip of a state with a distinct value in every field, the encoder
// refusing what the decoder would, and the decoder refusing truncation,
// trailing bytes, bad enums and booleans, counts past their caps, unknown
// devices and KVM structs of another size.
#include "runtime/snapshot/snapshot_codec.h"

#include <linux/virtio_ids.h>

#include <catch2/catch.hpp>

#include "tests/unit/snapshot/snapshot_test_support.h"

using namespace husk;
using namespace husk::snapshot;
using husk::virtio::DeviceState;

namespace {

std::vector<uint8_t> encode(const MachineState& m) {
  auto bytes = encode_state(m);
  REQUIRE(bytes);
  return *bytes;
}

std::string decode_error(const std::vector<uint8_t>& bytes) {
  auto m = decode_state(bytes);
  REQUIRE_FALSE(m);
  return m.error().message;
}

std::string encode_error(const MachineState& m) {
  auto bytes = encode_state(m);
  REQUIRE_FALSE(bytes);
  return bytes.error().message;
}

void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(at + i) = static_cast<uint8_t>(v >> (8 * i));
}

using Catch::Matchers::Contains;

// Offsets in the encoding (snapshot_codec.h's layout).
constexpr size_t kVcpuCountAt = 8 + 3 * (4 + sizeof(kvm_irqchip)) + 4 + sizeof(kvm_pit_state2) + 4 +
                                sizeof(kvm_clock_data);
constexpr size_t kRegsSizeAt = kVcpuCountAt + 4 + 4 + sizeof(kvm_mp_state);

// Where the devices of `m` start: its encoding without them ends with
// their count.
size_t devices_at(MachineState m) {
  m.virtio.clear();
  return encode(m).size();
}

}  // namespace

TEST_CASE("snapshot codec: a full state round trips exactly", "[snapshot]") {
  const MachineState m = test::sample_state();
  const auto bytes = encode(m);
  auto back = decode_state(bytes);
  REQUIRE(back);
  test::check_same(m, *back);
  CHECK(encode(*back) == bytes);
}

TEST_CASE("snapshot codec: one vCPU, no devices, empty xsave and MSRs", "[snapshot]") {
  MachineState m = test::sample_state(1, false, 0, 0);
  auto back = decode_state(encode(m));
  REQUIRE(back);
  test::check_same(m, *back);
}

TEST_CASE("snapshot codec: the encoder refuses what the decoder would", "[snapshot]") {
  MachineState m = test::sample_state(1);
  SECTION("no vCPU") {
    m.vcpus.clear();
    CHECK(encode_error(m) == "no vCPUs");
  }
  SECTION("too many vCPUs") {
    m.vcpus.resize(kMaxVcpus + 1);
    CHECK(encode_error(m) == "257 vCPUs, at most 256");
  }
  SECTION("too many devices") {
    m.virtio.resize(kMaxVirtioDevices + 1, m.virtio[1]);
    CHECK(encode_error(m) == "65 virtio devices, at most 64");
  }
  SECTION("too many queues") {
    m.virtio[2].transport.queues.resize(kMaxQueues + 1);
    CHECK(encode_error(m) == "virtio device 2: transport: 1025 queues, at most 1024");
  }
  SECTION("too many MSRs") {
    m.vcpus[0].msrs.resize(kMaxMsrs + 1);
    CHECK(encode_error(m) == "vcpu 0: 4097 MSRs, at most 4096");
  }
  SECTION("too large an xsave") {
    m.vcpus[0].xsave.resize(kMaxXsaveBytes + 1);
    CHECK(encode_error(m) == "vcpu 0: xsave of 262145 bytes, at most 262144");
  }
  SECTION("a block id too long") {
    std::get<husk::virtio::Block::State>(m.virtio[0].device).id.assign(kMaxDeviceIdBytes + 1, 'x');
    CHECK(encode_error(m) == "virtio device 0: block id of 257 bytes, at most 256");
  }
  SECTION("a device id that disagrees with the device's state") {
    m.virtio[1].device_id = VIRTIO_ID_BLOCK;
    CHECK(encode_error(m) == "virtio device 1: device id 2 (block) holds the state of a rng device");
  }
  SECTION("an unknown device id") {
    m.virtio[1].device_id = VIRTIO_ID_NET;
    CHECK(encode_error(m) == "virtio device 1: device id 1 is not one husk has");
  }
  SECTION("a device state out of range") {
    m.virtio[0].transport.device = static_cast<DeviceState>(3);
    CHECK(encode_error(m) == "virtio device 0: transport: device state 3 is not one husk has");
  }
}

TEST_CASE("snapshot codec: every truncation is refused", "[snapshot]") {
  const auto bytes = encode(test::sample_state(2, true, 64, 3));
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto m = decode_state(std::span<const uint8_t>(bytes).first(n));
    if (m) FAIL("a prefix of " << n << " of " << bytes.size() << " bytes decoded");
  }
}

TEST_CASE("snapshot codec: a byte past the end is refused", "[snapshot]") {
  auto bytes = encode(test::sample_state());
  bytes.push_back(0);
  CHECK_THAT(decode_error(bytes), Contains("1 bytes left over"));
}

TEST_CASE("snapshot codec: counts past their caps", "[snapshot]") {
  const MachineState m = test::sample_state(1);
  auto bytes = encode(m);
  SECTION("vCPUs") {
    put_u32(bytes, kVcpuCountAt, kMaxVcpus + 1);
    CHECK_THAT(decode_error(bytes), Contains("a count of 257, at most 256"));
  }
  SECTION("no vCPU") {
    put_u32(bytes, kVcpuCountAt, 0);
    CHECK_THAT(decode_error(bytes), Contains("no vCPUs"));
  }
  SECTION("more vCPUs than the input holds") {
    put_u32(bytes, kVcpuCountAt, kMaxVcpus);
    CHECK_THAT(decode_error(bytes), Contains("truncated"));
  }
  SECTION("devices") {
    put_u32(bytes, devices_at(m) - 4, 0xffffffff);
    CHECK_THAT(decode_error(bytes), Contains("a count of 4294967295, at most 64"));
  }
  SECTION("queues") {
    put_u32(bytes, devices_at(m) + 4 + 33, kMaxQueues + 1);
    CHECK_THAT(decode_error(bytes), Contains("virtio device 0: transport: at byte"));
    CHECK_THAT(decode_error(bytes), Contains("a count of 1025, at most 1024"));
  }
  SECTION("MSRs") {
    // The MSR array's count follows the xsave bytes, the xcrs, debugregs
    // and lapic, and the element size.
    const size_t at = kRegsSizeAt + 4 + sizeof(kvm_regs) + 4 + sizeof(kvm_sregs) + 4 + m.vcpus[0].xsave.size() + 4 +
                      sizeof(kvm_xcrs) + 4 + sizeof(kvm_debugregs) + 4 + sizeof(kvm_lapic_state) + 4;
    REQUIRE(bytes[at] == m.vcpus[0].msrs.size());
    put_u32(bytes, at, kMaxMsrs + 1);
    CHECK_THAT(decode_error(bytes), Contains("vcpu 0: msrs: at byte"));
    CHECK_THAT(decode_error(bytes), Contains("a count of 4097, at most 4096"));
  }
}

TEST_CASE("snapshot codec: a KVM struct of another size names the ABI", "[snapshot]") {
  auto bytes = encode(test::sample_state(1));
  REQUIRE(bytes[kRegsSizeAt] == sizeof(kvm_regs));
  put_u32(bytes, kRegsSizeAt, sizeof(kvm_regs) + 8);
  CHECK(decode_error(bytes) == "vcpu 0: kvm_regs: at byte " + std::to_string(kRegsSizeAt) +
                                   ": stored as 152 bytes, 144 here: made by a husk with a different KVM ABI");
}

TEST_CASE("snapshot codec: devices, enums and booleans are checked", "[snapshot]") {
  const MachineState m = test::sample_state(1);
  const size_t dev = devices_at(m);
  auto bytes = encode(m);
  SECTION("an unknown device id") {
    put_u32(bytes, dev, VIRTIO_ID_NET);
    CHECK_THAT(decode_error(bytes), Contains("virtio device 0: at byte " + std::to_string(dev) +
                                             ": device id 1 is not one husk has (block 2, rng 4, vsock 19)"));
  }
  SECTION("a device id that does not match the state after it") {
    // Only the id says which state follows: an rng's 8 bytes read as a
    // vsock's 12 run out, and as a block's id length they are too long.
    MachineState only_rng = m;
    only_rng.virtio.erase(only_rng.virtio.begin());
    only_rng.virtio.pop_back();
    auto b = encode(only_rng);
    put_u32(b, dev, VIRTIO_ID_VSOCK);
    CHECK_THAT(decode_error(b), Contains("truncated"));
    put_u32(b, dev, VIRTIO_ID_BLOCK);
    CHECK_FALSE(decode_state(b));
  }
  SECTION("a device state out of range") {
    bytes.at(dev + 4) = 3;
    CHECK_THAT(decode_error(bytes), Contains("transport: at byte " + std::to_string(dev + 4) +
                                             ": device state 3 is not one husk has"));
  }
  SECTION("a queue's ready flag that is not a boolean") {
    bytes.at(dev + 4 + 37 + 2) = 2;
    CHECK_THAT(decode_error(bytes), Contains("virtio device 0: transport: queue 0: at byte"));
    CHECK_THAT(decode_error(bytes), Contains("2 is not a boolean"));
  }
  SECTION("the serial's flag") {
    bytes.at(dev - 5) = 0x80;
    CHECK_THAT(decode_error(bytes), Contains("serial: at byte"));
  }
  SECTION("a block id past its cap") {
    put_u32(bytes, dev + 4 + 37 + 34, kMaxDeviceIdBytes + 1);
    CHECK_THAT(decode_error(bytes), Contains("a string of 257 bytes, at most 256"));
  }
}
