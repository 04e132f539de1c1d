// What the snapshot tests share: a MachineState with a distinct value in
// every field (KVM structs filled byte by byte, padding included) and a
// field-by-field comparison that says which field differs.
#pragma once

#include <linux/virtio_ids.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/snapshot/machine_state.h"

namespace husk::test {

using snapshot::MachineState;
using snapshot::VirtioDeviceState;

// Every byte of `value`, from `seed` on, none zero.
template <typename T>
void fill(T& value, uint8_t seed) {
  auto* p = reinterpret_cast<uint8_t*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(1 + (seed + i * 7) % 251);
}

inline virtio::QueueState sample_queue(uint16_t n) {
  virtio::QueueState q;
  q.size = static_cast<uint16_t>(256 >> (n % 3));
  q.ready = n % 2 == 0;
  q.event_idx = n % 3 != 0;
  q.desc_table = 0x10000 + 0x1000ull * n;
  q.avail_ring = 0x20000 + 0x1000ull * n;
  q.used_ring = 0x30000 + 0x1000ull * n;
  q.next_avail = static_cast<uint16_t>(700 + n);
  q.next_used = static_cast<uint16_t>(690 + n);
  q.signalled_used = static_cast<uint16_t>(680 + n);
  return q;
}

inline virtio::TransportState sample_transport(uint32_t n, uint16_t queues) {
  virtio::TransportState t;
  t.device = n % 2 == 0 ? virtio::DeviceState::kActive : virtio::DeviceState::kFailed;
  t.device_features_sel = 1;
  t.driver_features_sel = 1;
  t.driver_features = (1ull << 32) | (1ull << 28) | n;
  t.queue_sel = queues - 1u;
  t.status = 0xf;
  t.config_generation = 3 + n;
  t.interrupt_status = 1;
  for (uint16_t i = 0; i < queues; ++i) t.queues.push_back(sample_queue(static_cast<uint16_t>(n * 10 + i)));
  return t;
}

inline kvm::VcpuState sample_vcpu(uint8_t n, size_t xsave_bytes = 4096, size_t msrs = 40) {
  kvm::VcpuState v;
  fill(v.mp_state, n);
  fill(v.regs, n + 1);
  fill(v.sregs, n + 2);
  for (size_t i = 0; i < xsave_bytes; ++i) v.xsave.push_back(static_cast<uint8_t>(i * 13 + n));
  fill(v.xcrs, n + 3);
  fill(v.debugregs, n + 4);
  fill(v.lapic, n + 5);
  for (size_t i = 0; i < msrs; ++i) {
    kvm_msr_entry e;
    fill(e, static_cast<uint8_t>(n + i));
    v.msrs.push_back(e);
  }
  fill(v.events, n + 6);
  v.regs.rip = 0xffffffff81000000ull + n;
  return v;
}

// `vcpus` vCPUs; with `devices`, a block, an rng and a vsock device.
inline MachineState sample_state(uint8_t vcpus = 2, bool devices = true, size_t xsave_bytes = 4096,
                                 size_t msrs = 40) {
  MachineState m;
  m.memory_bytes = 256ull << 20;
  fill(m.vm.pic_master, 10);
  fill(m.vm.pic_slave, 20);
  fill(m.vm.ioapic, 30);
  fill(m.vm.pit, 40);
  fill(m.vm.clock, 50);
  for (uint8_t i = 0; i < vcpus; ++i) m.vcpus.push_back(sample_vcpu(static_cast<uint8_t>(i * 31), xsave_bytes, msrs));
  m.serial = {0x0f, 0x03, 0x0b, 0x5a, 0xc7, 0x01, 0x02, true};
  if (devices) {
    m.virtio.push_back({VIRTIO_ID_BLOCK, sample_transport(0, 1), virtio::Block::State{"rootfs", 512ull << 20, true}});
    m.virtio.push_back({VIRTIO_ID_RNG, sample_transport(1, 1), virtio::Rng::State{123456789}});
    m.virtio.push_back({VIRTIO_ID_VSOCK, sample_transport(2, 3), virtio::Vsock::State{42, (1u << 30) + 17}});
  }
  return m;
}

template <typename T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

inline bool same(const virtio::QueueState& a, const virtio::QueueState& b) {
  return a.size == b.size && a.ready == b.ready && a.event_idx == b.event_idx && a.desc_table == b.desc_table &&
         a.avail_ring == b.avail_ring && a.used_ring == b.used_ring && a.next_avail == b.next_avail &&
         a.next_used == b.next_used && a.signalled_used == b.signalled_used;
}

inline void check_same(const virtio::TransportState& a, const virtio::TransportState& b) {
  CHECK(a.device == b.device);
  CHECK(a.device_features_sel == b.device_features_sel);
  CHECK(a.driver_features_sel == b.driver_features_sel);
  CHECK(a.driver_features == b.driver_features);
  CHECK(a.queue_sel == b.queue_sel);
  CHECK(a.status == b.status);
  CHECK(a.config_generation == b.config_generation);
  CHECK(a.interrupt_status == b.interrupt_status);
  REQUIRE(a.queues.size() == b.queues.size());
  for (size_t i = 0; i < a.queues.size(); ++i) CHECK(same(a.queues[i], b.queues[i]));
}

inline void check_same(const kvm::VcpuState& a, const kvm::VcpuState& b) {
  CHECK(same_bytes(a.mp_state, b.mp_state));
  CHECK(same_bytes(a.regs, b.regs));
  CHECK(same_bytes(a.sregs, b.sregs));
  CHECK(a.xsave == b.xsave);
  CHECK(same_bytes(a.xcrs, b.xcrs));
  CHECK(same_bytes(a.debugregs, b.debugregs));
  CHECK(same_bytes(a.lapic, b.lapic));
  REQUIRE(a.msrs.size() == b.msrs.size());
  for (size_t i = 0; i < a.msrs.size(); ++i) CHECK(same_bytes(a.msrs[i], b.msrs[i]));
  CHECK(same_bytes(a.events, b.events));
}

inline void check_same(const MachineState& a, const MachineState& b) {
  CHECK(a.memory_bytes == b.memory_bytes);
  CHECK(same_bytes(a.vm.pic_master, b.vm.pic_master));
  CHECK(same_bytes(a.vm.pic_slave, b.vm.pic_slave));
  CHECK(same_bytes(a.vm.ioapic, b.vm.ioapic));
  CHECK(same_bytes(a.vm.pit, b.vm.pit));
  CHECK(same_bytes(a.vm.clock, b.vm.clock));
  REQUIRE(a.vcpus.size() == b.vcpus.size());
  for (size_t i = 0; i < a.vcpus.size(); ++i) check_same(a.vcpus[i], b.vcpus[i]);
  CHECK(a.serial == b.serial);
  REQUIRE(a.virtio.size() == b.virtio.size());
  for (size_t i = 0; i < a.virtio.size(); ++i) {
    const VirtioDeviceState& x = a.virtio[i];
    const VirtioDeviceState& y = b.virtio[i];
    CHECK(x.device_id == y.device_id);
    check_same(x.transport, y.transport);
    REQUIRE(x.device.index() == y.device.index());
    if (const auto* bx = std::get_if<virtio::Block::State>(&x.device)) {
      const auto& by = std::get<virtio::Block::State>(y.device);
      CHECK(bx->id == by.id);
      CHECK(bx->capacity_bytes == by.capacity_bytes);
      CHECK(bx->read_only == by.read_only);
    } else if (const auto* rx = std::get_if<virtio::Rng::State>(&x.device)) {
      CHECK(rx->bytes_served == std::get<virtio::Rng::State>(y.device).bytes_served);
    } else {
      const auto& vx = std::get<virtio::Vsock::State>(x.device);
      const auto& vy = std::get<virtio::Vsock::State>(y.device);
      CHECK(vx.guest_cid == vy.guest_cid);
      CHECK(vx.next_local_port == vy.next_local_port);
    }
  }
}

}  // namespace husk::test
