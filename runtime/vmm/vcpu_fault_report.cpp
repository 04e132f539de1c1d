#include "runtime/vmm/vcpu_fault_report.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace husk::vmm {

const char* kvm_exit_name(uint32_t reason) {
  switch (reason) {
    case KVM_EXIT_UNKNOWN: return "UNKNOWN";
    case KVM_EXIT_EXCEPTION: return "EXCEPTION";
    case KVM_EXIT_IO: return "IO";
    case KVM_EXIT_HYPERCALL: return "HYPERCALL";
    case KVM_EXIT_DEBUG: return "DEBUG";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_IRQ_WINDOW_OPEN: return "IRQ_WINDOW_OPEN";
    case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
    case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
    case KVM_EXIT_INTR: return "INTR";
    case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
    case KVM_EXIT_SYSTEM_EVENT: return "SYSTEM_EVENT";
    default: return "OTHER";
  }
}

void ExitHistory::record(const kvm_run& run) {
  ExitRecord& r = ring_[count_ % kCapacity];
  r = ExitRecord{};
  r.reason = run.exit_reason;
  if (run.exit_reason == KVM_EXIT_IO) {
    r.address = run.io.port;
    r.size = run.io.size;
    r.write = run.io.direction == KVM_EXIT_IO_OUT;
    if (r.write) {
      // Safe: data_offset and size are KVM's, and the bytes lie inside the
      // kvm_run mapping (api.rst, KVM_EXIT_IO); at most 8 bytes are copied.
      const auto* data = reinterpret_cast<const uint8_t*>(&run) + run.io.data_offset;
      std::memcpy(&r.value, data, std::min<size_t>(run.io.size, sizeof(r.value)));
    }
  } else if (run.exit_reason == KVM_EXIT_MMIO) {
    r.address = run.mmio.phys_addr;
    r.size = static_cast<uint8_t>(std::min<uint32_t>(run.mmio.len, sizeof(run.mmio.data)));
    r.write = run.mmio.is_write != 0;
    if (r.write) std::memcpy(&r.value, run.mmio.data, r.size);
  }
  ++count_;
}

std::string ExitHistory::describe() const {
  std::string out;
  const uint64_t kept = std::min<uint64_t>(count_, kCapacity);
  fmt::format_to(std::back_inserter(out), "last {} of {} exits (oldest first):\n", kept, count_);
  for (uint64_t i = count_ - kept; i < count_; ++i) {
    const ExitRecord& r = ring_[i % kCapacity];
    fmt::format_to(std::back_inserter(out), "  {:<14}", kvm_exit_name(r.reason));
    if (r.reason == KVM_EXIT_IO || r.reason == KVM_EXIT_MMIO) {
      fmt::format_to(std::back_inserter(out), " {} {:#x} size {}", r.write ? "write" : "read ",
                     r.address, r.size);
      if (r.write) fmt::format_to(std::back_inserter(out), " value {:#x}", r.value);
    }
    out += '\n';
  }
  return out;
}

namespace {

void format_segment(std::string& out, const char* name, const kvm_segment& s) {
  fmt::format_to(std::back_inserter(out),
                 "  {:<3} sel {:#06x} base {:#018x} limit {:#010x} type {:#x} dpl {} p {} l {} db {} "
                 "unusable {}\n",
                 name, s.selector, s.base, s.limit, s.type, s.dpl, s.present, s.l, s.db, s.unusable);
}

void format_regs(std::string& out, const kvm::Vcpu& vcpu) {
  auto regs = vcpu.get_regs();
  if (!regs) {
    out += "  registers unavailable: " + regs.error().message + "\n";
    return;
  }
  const kvm_regs& r = *regs;
  fmt::format_to(std::back_inserter(out),
                 "  rip {:#018x} rsp {:#018x} rflags {:#010x}\n"
                 "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n"
                 "  rsi {:#018x} rdi {:#018x} rbp {:#018x}\n"
                 "  r8  {:#018x} r9  {:#018x} r10 {:#018x} r11 {:#018x}\n"
                 "  r12 {:#018x} r13 {:#018x} r14 {:#018x} r15 {:#018x}\n",
                 r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8,
                 r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15);
}

void format_sregs(std::string& out, const kvm::Vcpu& vcpu) {
  auto sregs = vcpu.get_sregs();
  if (!sregs) {
    out += "  special registers unavailable: " + sregs.error().message + "\n";
    return;
  }
  const kvm_sregs& s = *sregs;
  fmt::format_to(std::back_inserter(out),
                 "  cr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x} cr8 {:#x}\n"
                 "  efer {:#x} apic_base {:#x}\n",
                 s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base);
  format_segment(out, "cs", s.cs);
  format_segment(out, "ss", s.ss);
  format_segment(out, "ds", s.ds);
  format_segment(out, "tr", s.tr);
  fmt::format_to(std::back_inserter(out), "  gdt base {:#018x} limit {:#x}; idt base {:#018x} limit {:#x}\n",
                 s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

void format_events(std::string& out, const kvm::Vcpu& vcpu) {
  auto events = vcpu.get_vcpu_events();
  if (!events) {
    out += "  events unavailable: " + events.error().message + "\n";
    return;
  }
  const kvm_vcpu_events& e = *events;
  fmt::format_to(std::back_inserter(out),
                 "  exception: injected {} pending {} nr {} error code {:#x} (has {}); "
                 "interrupt: injected {} nr {} shadow {}; nmi: injected {} pending {} masked {}\n",
                 e.exception.injected, e.exception.pending, e.exception.nr, e.exception.error_code,
                 e.exception.has_error_code, e.interrupt.injected, e.interrupt.nr, e.interrupt.shadow,
                 e.nmi.injected, e.nmi.pending, e.nmi.masked);
}

}  // namespace

std::string vcpu_fault_report(const kvm::Vcpu& vcpu, const ExitHistory& history) {
  std::string out = fmt::format("vCPU {} state:\n", vcpu.id());
  format_regs(out, vcpu);
  format_sregs(out, vcpu);
  format_events(out, vcpu);
  out += history.describe();
  return out;
}

}  // namespace husk::vmm
