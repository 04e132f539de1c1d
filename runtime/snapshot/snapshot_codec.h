// The snapshot's state part: a MachineState as bytes and back (the state
// file's header is snapshot_file.h's).
//
// Layout, version 1 (byte_codec.h's encoding; "kvm X" is a KVM UAPI struct
// stored with its size, so a husk built against another layout of it
// refuses the state instead of misreading it):
//   u64 memory_bytes
//   kvm_irqchip pic_master, pic_slave, ioapic; kvm_pit_state2; kvm_clock_data
//   u32 vCPU count (1..kMaxVcpus), then each vCPU:
//     kvm_mp_state, kvm_regs, kvm_sregs; bytes xsave (<= kMaxXsaveBytes);
//     kvm_xcrs, kvm_debugregs, kvm_lapic_state;
//     kvm_msr_entry array (<= kMaxMsrs); kvm_vcpu_events
//   serial: u8 ier, lcr, mcr, scratch, fcr, divisor_low, divisor_high;
//     bool thr_interrupt_pending
//   u32 virtio device count (<= kMaxVirtioDevices), then each device:
//     u32 device_id (VIRTIO_ID_BLOCK, _RNG or _VSOCK: it says which State
//     follows; no other alternative is stored, so they cannot disagree)
//     transport: u8 DeviceState, u32 device_features_sel,
//       driver_features_sel, u64 driver_features, u32 queue_sel, status,
//       config_generation, interrupt_status, u32 queue count (<= kMaxQueues),
//       each queue: u16 size, bool ready, bool event_idx, u64 desc_table,
//       avail_ring, used_ring, u16 next_avail, next_used, signalled_used
//     block: string id (<= kMaxDeviceIdBytes), u64 capacity_bytes,
//       bool read_only; rng: u64 bytes_served; vsock: u64 guest_cid,
//       u32 next_local_port
// Nothing may follow the last device.
//
// The encoding is canonical: decoding bytes and encoding the result gives
// the same bytes. encode_state refuses what decode_state would refuse
// (counts past the caps, no vCPU, a state that does not match its
// device_id), so a husk never writes a state it cannot read back.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/snapshot/machine_state.h"

namespace husk::snapshot {

inline constexpr uint32_t kMaxVcpus = 256;
inline constexpr uint32_t kMaxVirtioDevices = 64;
inline constexpr uint32_t kMaxQueues = 1024;  // per device
inline constexpr uint32_t kMaxMsrs = 4096;    // per vCPU
// KVM_CAP_XSAVE2's size is about 11 KiB with AMX; room to grow.
inline constexpr uint32_t kMaxXsaveBytes = 256 * 1024;
inline constexpr uint32_t kMaxDeviceIdBytes = 256;

// The note on every KVM struct whose size differs from this build's.
inline constexpr const char* kKvmAbiNote = "made by a husk with a different KVM ABI";

[[nodiscard]] Result<std::vector<uint8_t>> encode_state(const MachineState& state);
// Errors name the part: "vcpu 1: kvm_sregs: at byte 2400: stored as 300
// bytes, 312 here: made by a husk with a different KVM ABI".
[[nodiscard]] Result<MachineState> decode_state(std::span<const uint8_t> bytes);

}  // namespace husk::snapshot
