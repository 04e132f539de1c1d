#include "runtime/snapshot/snapshot_codec.h"

#include <linux/virtio_ids.h>

#include <string>

#include <fmt/format.h>

#include "runtime/snapshot/byte_codec.h"

namespace husk::snapshot {

namespace {

using virtio::Block;
using virtio::DeviceState;
using virtio::QueueState;
using virtio::Rng;
using virtio::TransportState;
using virtio::Vsock;

// The fewest bytes one element of each counted list takes, so that a count
// the rest of the input cannot hold fails before anything is allocated.
template <typename T>
constexpr size_t kRaw = 4 + sizeof(T);
constexpr size_t kMinVcpuBytes = kRaw<kvm_mp_state> + kRaw<kvm_regs> + kRaw<kvm_sregs> + 4 + kRaw<kvm_xcrs> +
                                 kRaw<kvm_debugregs> + kRaw<kvm_lapic_state> + 8 + kRaw<kvm_vcpu_events>;
constexpr size_t kQueueBytes = 2 + 1 + 1 + 3 * 8 + 3 * 2;
constexpr size_t kMinTransportBytes = 1 + 4 + 4 + 8 + 4 + 4 + 4 + 4 + 4;
constexpr size_t kMinDeviceBytes = 4 + kMinTransportBytes + 8;  // the smallest State is rng's

const char* device_name(uint32_t id) {
  switch (id) {
    case VIRTIO_ID_BLOCK: return "block";
    case VIRTIO_ID_RNG: return "rng";
    case VIRTIO_ID_VSOCK: return "vsock";
    default: return nullptr;
  }
}

// The variant alternative each device id stores.
constexpr size_t kBlockIndex = 0, kRngIndex = 1, kVsockIndex = 2;
static_assert(std::is_same_v<std::variant_alternative_t<kBlockIndex, decltype(VirtioDeviceState::device)>,
                             Block::State>);
static_assert(std::is_same_v<std::variant_alternative_t<kRngIndex, decltype(VirtioDeviceState::device)>,
                             Rng::State>);
static_assert(std::is_same_v<std::variant_alternative_t<kVsockIndex, decltype(VirtioDeviceState::device)>,
                             Vsock::State>);

bool valid_device_state(DeviceState s) {
  return s == DeviceState::kInactive || s == DeviceState::kActive || s == DeviceState::kFailed;
}

// --- encoding ---

void put_queue(ByteWriter& w, const QueueState& q) {
  w.u16(q.size);
  w.boolean(q.ready);
  w.boolean(q.event_idx);
  w.u64(q.desc_table);
  w.u64(q.avail_ring);
  w.u64(q.used_ring);
  w.u16(q.next_avail);
  w.u16(q.next_used);
  w.u16(q.signalled_used);
}

Result<void> put_transport(ByteWriter& w, const TransportState& t) {
  if (!valid_device_state(t.device)) {
    return fail(fmt::format("transport: device state {} is not one husk has", static_cast<unsigned>(t.device)));
  }
  if (t.queues.size() > kMaxQueues) {
    return fail(fmt::format("transport: {} queues, at most {}", t.queues.size(), kMaxQueues));
  }
  w.u8(static_cast<uint8_t>(t.device));
  w.u32(t.device_features_sel);
  w.u32(t.driver_features_sel);
  w.u64(t.driver_features);
  w.u32(t.queue_sel);
  w.u32(t.status);
  w.u32(t.config_generation);
  w.u32(t.interrupt_status);
  w.u32(static_cast<uint32_t>(t.queues.size()));
  for (const QueueState& q : t.queues) put_queue(w, q);
  return {};
}

Result<void> put_device(ByteWriter& w, const VirtioDeviceState& d) {
  const char* name = device_name(d.device_id);
  if (name == nullptr) return fail(fmt::format("device id {} is not one husk has", d.device_id));
  const size_t expected = d.device_id == VIRTIO_ID_BLOCK ? kBlockIndex
                          : d.device_id == VIRTIO_ID_RNG ? kRngIndex
                                                         : kVsockIndex;
  if (d.device.index() != expected) {
    static const char* const kNames[] = {"block", "rng", "vsock"};
    return fail(fmt::format("device id {} ({}) holds the state of a {} device", d.device_id, name,
                            d.device.index() < 3 ? kNames[d.device.index()] : "valueless"));
  }
  w.u32(d.device_id);
  HUSK_TRY(put_transport(w, d.transport));
  if (const auto* b = std::get_if<Block::State>(&d.device)) {
    if (b->id.size() > kMaxDeviceIdBytes) {
      return fail(fmt::format("block id of {} bytes, at most {}", b->id.size(), kMaxDeviceIdBytes));
    }
    w.string(b->id);
    w.u64(b->capacity_bytes);
    w.boolean(b->read_only);
  } else if (const auto* r = std::get_if<Rng::State>(&d.device)) {
    w.u64(r->bytes_served);
  } else if (const auto* v = std::get_if<Vsock::State>(&d.device)) {
    w.u64(v->guest_cid);
    w.u32(v->next_local_port);
  }
  return {};
}

Result<void> put_vcpu(ByteWriter& w, const kvm::VcpuState& v) {
  if (v.xsave.size() > kMaxXsaveBytes) {
    return fail(fmt::format("xsave of {} bytes, at most {}", v.xsave.size(), kMaxXsaveBytes));
  }
  if (v.msrs.size() > kMaxMsrs) return fail(fmt::format("{} MSRs, at most {}", v.msrs.size(), kMaxMsrs));
  w.raw(v.mp_state);
  w.raw(v.regs);
  w.raw(v.sregs);
  w.bytes(v.xsave);
  w.raw(v.xcrs);
  w.raw(v.debugregs);
  w.raw(v.lapic);
  w.raw_array(std::span<const kvm_msr_entry>(v.msrs));
  w.raw(v.events);
  return {};
}

// --- decoding ---

// A KVM struct; a size of another ABI says so.
template <typename T>
Result<T> get_kvm(ByteReader& r, const char* name) {
  auto v = r.raw<T>(kKvmAbiNote);
  if (!v) return wrap(name, std::move(v.error()));
  return v;
}

Result<QueueState> get_queue(ByteReader& r) {
  QueueState q;
  HUSK_TRY_ASSIGN(q.size, r.u16());
  HUSK_TRY_ASSIGN(q.ready, r.boolean());
  HUSK_TRY_ASSIGN(q.event_idx, r.boolean());
  HUSK_TRY_ASSIGN(q.desc_table, r.u64());
  HUSK_TRY_ASSIGN(q.avail_ring, r.u64());
  HUSK_TRY_ASSIGN(q.used_ring, r.u64());
  HUSK_TRY_ASSIGN(q.next_avail, r.u16());
  HUSK_TRY_ASSIGN(q.next_used, r.u16());
  HUSK_TRY_ASSIGN(q.signalled_used, r.u16());
  return q;
}

Result<TransportState> get_transport(ByteReader& r) {
  TransportState t;
  const size_t at = r.offset();
  HUSK_TRY_ASSIGN(const uint8_t device, r.u8());
  // Safe: DeviceState's underlying type is uint8_t and the value is checked
  // to be one of its enumerators before anything uses it.
  t.device = static_cast<DeviceState>(device);
  if (!valid_device_state(t.device)) {
    return fail(fmt::format("at byte {}: device state {} is not one husk has", at, device));
  }
  HUSK_TRY_ASSIGN(t.device_features_sel, r.u32());
  HUSK_TRY_ASSIGN(t.driver_features_sel, r.u32());
  HUSK_TRY_ASSIGN(t.driver_features, r.u64());
  HUSK_TRY_ASSIGN(t.queue_sel, r.u32());
  HUSK_TRY_ASSIGN(t.status, r.u32());
  HUSK_TRY_ASSIGN(t.config_generation, r.u32());
  HUSK_TRY_ASSIGN(t.interrupt_status, r.u32());
  HUSK_TRY_ASSIGN(const uint32_t queues, r.count(kMaxQueues, kQueueBytes));
  for (uint32_t i = 0; i < queues; ++i) {
    auto q = get_queue(r);
    if (!q) return wrap(fmt::format("queue {}", i), std::move(q.error()));
    t.queues.push_back(*q);
  }
  return t;
}

Result<VirtioDeviceState> get_device(ByteReader& r) {
  VirtioDeviceState d;
  const size_t at = r.offset();
  HUSK_TRY_ASSIGN(d.device_id, r.u32());
  if (device_name(d.device_id) == nullptr) {
    return fail(fmt::format("at byte {}: device id {} is not one husk has (block {}, rng {}, vsock {})", at,
                            d.device_id, VIRTIO_ID_BLOCK, VIRTIO_ID_RNG, VIRTIO_ID_VSOCK));
  }
  auto t = get_transport(r);
  if (!t) return wrap("transport", std::move(t.error()));
  d.transport = std::move(*t);
  switch (d.device_id) {
    case VIRTIO_ID_BLOCK: {
      Block::State b;
      HUSK_TRY_ASSIGN(b.id, r.string(kMaxDeviceIdBytes));
      HUSK_TRY_ASSIGN(b.capacity_bytes, r.u64());
      HUSK_TRY_ASSIGN(b.read_only, r.boolean());
      d.device = std::move(b);
      break;
    }
    case VIRTIO_ID_RNG: {
      Rng::State s;
      HUSK_TRY_ASSIGN(s.bytes_served, r.u64());
      d.device = s;
      break;
    }
    default: {  // VIRTIO_ID_VSOCK, the only other one device_name() knows
      Vsock::State v;
      HUSK_TRY_ASSIGN(v.guest_cid, r.u64());
      HUSK_TRY_ASSIGN(v.next_local_port, r.u32());
      d.device = v;
      break;
    }
  }
  return d;
}

Result<kvm::VcpuState> get_vcpu(ByteReader& r) {
  kvm::VcpuState v;
  HUSK_TRY_ASSIGN(v.mp_state, get_kvm<kvm_mp_state>(r, "kvm_mp_state"));
  HUSK_TRY_ASSIGN(v.regs, get_kvm<kvm_regs>(r, "kvm_regs"));
  HUSK_TRY_ASSIGN(v.sregs, get_kvm<kvm_sregs>(r, "kvm_sregs"));
  auto xsave = r.bytes(kMaxXsaveBytes);
  if (!xsave) return wrap("xsave", std::move(xsave.error()));
  v.xsave = std::move(*xsave);
  HUSK_TRY_ASSIGN(v.xcrs, get_kvm<kvm_xcrs>(r, "kvm_xcrs"));
  HUSK_TRY_ASSIGN(v.debugregs, get_kvm<kvm_debugregs>(r, "kvm_debugregs"));
  HUSK_TRY_ASSIGN(v.lapic, get_kvm<kvm_lapic_state>(r, "kvm_lapic_state"));
  auto msrs = r.raw_array<kvm_msr_entry>(kMaxMsrs, kKvmAbiNote);
  if (!msrs) return wrap("msrs", std::move(msrs.error()));
  v.msrs = std::move(*msrs);
  HUSK_TRY_ASSIGN(v.events, get_kvm<kvm_vcpu_events>(r, "kvm_vcpu_events"));
  return v;
}

Result<kvm::VmState> get_vm(ByteReader& r) {
  kvm::VmState vm;
  HUSK_TRY_ASSIGN(vm.pic_master, get_kvm<kvm_irqchip>(r, "pic_master"));
  HUSK_TRY_ASSIGN(vm.pic_slave, get_kvm<kvm_irqchip>(r, "pic_slave"));
  HUSK_TRY_ASSIGN(vm.ioapic, get_kvm<kvm_irqchip>(r, "ioapic"));
  HUSK_TRY_ASSIGN(vm.pit, get_kvm<kvm_pit_state2>(r, "kvm_pit_state2"));
  HUSK_TRY_ASSIGN(vm.clock, get_kvm<kvm_clock_data>(r, "kvm_clock_data"));
  return vm;
}

Result<devices::Serial::State> get_serial(ByteReader& r) {
  devices::Serial::State s;
  HUSK_TRY_ASSIGN(s.ier, r.u8());
  HUSK_TRY_ASSIGN(s.lcr, r.u8());
  HUSK_TRY_ASSIGN(s.mcr, r.u8());
  HUSK_TRY_ASSIGN(s.scratch, r.u8());
  HUSK_TRY_ASSIGN(s.fcr, r.u8());
  HUSK_TRY_ASSIGN(s.divisor_low, r.u8());
  HUSK_TRY_ASSIGN(s.divisor_high, r.u8());
  HUSK_TRY_ASSIGN(s.thr_interrupt_pending, r.boolean());
  return s;
}

}  // namespace

Result<std::vector<uint8_t>> encode_state(const MachineState& state) {
  if (state.vcpus.empty()) return fail("no vCPUs");
  if (state.vcpus.size() > kMaxVcpus) return fail(fmt::format("{} vCPUs, at most {}", state.vcpus.size(), kMaxVcpus));
  if (state.virtio.size() > kMaxVirtioDevices) {
    return fail(fmt::format("{} virtio devices, at most {}", state.virtio.size(), kMaxVirtioDevices));
  }
  ByteWriter w;
  w.u64(state.memory_bytes);
  w.raw(state.vm.pic_master);
  w.raw(state.vm.pic_slave);
  w.raw(state.vm.ioapic);
  w.raw(state.vm.pit);
  w.raw(state.vm.clock);
  w.u32(static_cast<uint32_t>(state.vcpus.size()));
  for (size_t i = 0; i < state.vcpus.size(); ++i) {
    auto ok = put_vcpu(w, state.vcpus[i]);
    if (!ok) return wrap(fmt::format("vcpu {}", i), std::move(ok.error()));
  }
  const devices::Serial::State& s = state.serial;
  for (uint8_t b : {s.ier, s.lcr, s.mcr, s.scratch, s.fcr, s.divisor_low, s.divisor_high}) w.u8(b);
  w.boolean(s.thr_interrupt_pending);
  w.u32(static_cast<uint32_t>(state.virtio.size()));
  for (size_t i = 0; i < state.virtio.size(); ++i) {
    auto ok = put_device(w, state.virtio[i]);
    if (!ok) return wrap(fmt::format("virtio device {}", i), std::move(ok.error()));
  }
  return std::move(w).finish();
}

Result<MachineState> decode_state(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  MachineState m;
  HUSK_TRY_ASSIGN(m.memory_bytes, r.u64());
  auto vm = get_vm(r);
  if (!vm) return wrap("vm", std::move(vm.error()));
  m.vm = *vm;
  const size_t vcpus_at = r.offset();
  HUSK_TRY_ASSIGN(const uint32_t vcpus, r.count(kMaxVcpus, kMinVcpuBytes));
  if (vcpus == 0) return fail(fmt::format("at byte {}: no vCPUs", vcpus_at));
  for (uint32_t i = 0; i < vcpus; ++i) {
    auto v = get_vcpu(r);
    if (!v) return wrap(fmt::format("vcpu {}", i), std::move(v.error()));
    m.vcpus.push_back(std::move(*v));
  }
  auto serial = get_serial(r);
  if (!serial) return wrap("serial", std::move(serial.error()));
  m.serial = *serial;
  HUSK_TRY_ASSIGN(const uint32_t devices, r.count(kMaxVirtioDevices, kMinDeviceBytes));
  for (uint32_t i = 0; i < devices; ++i) {
    auto d = get_device(r);
    if (!d) return wrap(fmt::format("virtio device {}", i), std::move(d.error()));
    m.virtio.push_back(std::move(*d));
  }
  HUSK_TRY(r.expect_end());
  return m;
}

}  // namespace husk::snapshot
