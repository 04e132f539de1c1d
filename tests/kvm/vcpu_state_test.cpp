// Saving and restoring vCPU and VM state (runtime/kvm/vcpu_state.h) on the
// machine's own /dev/kvm: a tiny 64-bit guest counts in memory and writes
// the count to a port; its state and memory move to a second VM, which
// goes on counting from there. Then the errors a bad state gives, the
// in-kernel devices' round trip, and both saves under the seccomp filters
// of the threads that make them (vcpu and vmm).
#include "runtime/kvm/vcpu_state.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/arch/x86_64/boot_cpu_state.h"
#include "runtime/arch/x86_64/cpuid.h"
#include "runtime/arch/x86_64/gdt.h"
#include "runtime/arch/x86_64/lapic.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/page_tables.h"
#include "runtime/memory/guest_memory.h"
#include "seccomp/filter.h"
#include "seccomp/violation.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/seccomp/seccomp_child.h"

using namespace husk;
namespace x86 = husk::x86_64;

namespace {

constexpr uint64_t kMemorySize = 4ull << 20;
constexpr uint64_t kCodeAddr = 0x100000;
constexpr uint64_t kCounterAddr = 0x110000;
constexpr uint16_t kPort = 0x404;  // nothing in KVM claims it: every out exits

// 64-bit mode at kCodeAddr: rbx = &counter; dx = kPort; then forever
// { ++*(u32*)rbx; eax = *rbx; ++rcx; out dx, eax }.
const std::vector<uint8_t> kCountingGuest = {
    0xbb, 0x00, 0x00, 0x11, 0x00,  // mov ebx, 0x110000 (kCounterAddr)
    0x66, 0xba, 0x04, 0x04,        // mov dx, 0x404 (kPort)
    0xff, 0x03,                    // loop: inc dword [rbx]
    0x8b, 0x03,                    // mov eax, [rbx]
    0x48, 0xff, 0xc1,              // inc rcx
    0xef,                          // out dx, eax
    0xeb, 0xf6,                    // jmp loop
};

// The values the first VM starts with where a fresh vCPU has zeros, so that
// a restore that skipped a part would show.
constexpr uint64_t kLstar = 0xffffffff81a00000;
constexpr uint64_t kKernelGsBase = 0xffff888012340000;
constexpr uint64_t kStar = 0x0023001000000000;
constexpr uint64_t kSyscallMask = 0x47700;
constexpr uint64_t kDr0 = 0x1000;
constexpr uint64_t kDr1 = 0x2000;
constexpr uint64_t kDr7 = 0x400 | 0x3;  // reserved bit 10, L0 and G0
constexpr uint64_t kCr4OsFxsr = 1ull << 9;
constexpr uint64_t kCr4OsXsave = 1ull << 18;
constexpr uint64_t kXcr0X87Sse = 0x3;
constexpr uint8_t kXmm0Byte = 0x5a;
constexpr size_t kXmm0Offset = 160;      // in the legacy XSAVE area (SDM vol. 1, 10.5.1)
constexpr size_t kXstateBvOffset = 512;  // the XSAVE header's first byte (SDM vol. 1, 13.4.2)
constexpr uint8_t kXstateSse = 1u << 1;

// A VM with the in-kernel irqchip and PIT, 4 MiB of memory and one vCPU
// that has `cpuid`, as the builder makes one (runtime/vmm/vm_builder.cpp).
struct TinyVm {
  static Result<TinyVm> create(const kvm::Kvm& kvm, std::span<const kvm_cpuid_entry2> cpuid) {
    HUSK_TRY_ASSIGN(kvm::Vm vm, kvm.create_vm());
    HUSK_TRY(vm.set_tss_addr(x86::kKvmTssAddr));
    HUSK_TRY(vm.set_identity_map_addr(x86::kKvmIdentityMapAddr));
    HUSK_TRY(vm.create_irqchip());
    HUSK_TRY(vm.create_pit2());
    HUSK_TRY_ASSIGN(GuestMemory memory, GuestMemory::create({RegionSpec{0, kMemorySize}}));
    const GuestRegion& region = memory.regions().front();
    HUSK_TRY(vm.set_user_memory_region(0, region.gpa(), region.size(), region.host()));
    HUSK_TRY_ASSIGN(kvm::Vcpu vcpu, vm.create_vcpu(0));
    HUSK_TRY(vcpu.set_cpuid(cpuid));
    return TinyVm{std::move(vm), std::move(memory), std::move(vcpu)};
  }
  kvm::Vm vm;
  GuestMemory memory;
  kvm::Vcpu vcpu;
};

std::vector<kvm_cpuid_entry2> guest_cpuid(const kvm::Kvm& kvm) {
  auto supported = kvm.supported_cpuid();
  REQUIRE(supported);
  return x86::normalize_cpuid(*supported, 0, 1, kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0);
}

// The counting guest in long mode, with something other than the reset
// value in each part a restore writes.
Result<void> start_counting_guest(const TinyVm& t) {
  HUSK_TRY(x86::write_identity_page_tables(t.memory));
  HUSK_TRY(x86::write_boot_gdt(t.memory));
  HUSK_TRY(t.memory.write(kCodeAddr, kCountingGuest));
  std::vector<kvm_msr_entry> msrs = x86::boot_msrs();
  for (auto [index, value] : {std::pair{x86::kMsrLstar, kLstar}, std::pair{x86::kMsrKernelGsBase, kKernelGsBase},
                              std::pair{x86::kMsrStar, kStar}, std::pair{x86::kMsrSyscallMask, kSyscallMask}}) {
    kvm_msr_entry entry{};
    entry.index = index;
    entry.data = value;
    msrs.push_back(entry);
  }
  HUSK_TRY(t.vcpu.set_msrs(msrs));
  HUSK_TRY_ASSIGN(kvm_lapic_state lapic, t.vcpu.get_lapic());
  x86::set_boot_lint(lapic);
  HUSK_TRY(t.vcpu.set_lapic(lapic));
  HUSK_TRY(t.vcpu.set_fpu(x86::boot_fpu()));
  HUSK_TRY_ASSIGN(kvm_sregs sregs, t.vcpu.get_sregs());
  x86::setup_long_mode_sregs(sregs);
  sregs.cr4 |= kCr4OsFxsr | kCr4OsXsave;
  HUSK_TRY(t.vcpu.set_sregs(sregs));
  kvm_xcrs xcrs{};
  xcrs.nr_xcrs = 1;
  xcrs.xcrs[0].xcr = 0;
  xcrs.xcrs[0].value = kXcr0X87Sse;
  HUSK_TRY(t.vcpu.set_xcrs(xcrs));
  // XMM0 through KVM_SET_XSAVE, with its component marked in use: an XMM
  // register set with KVM_SET_FPU leaves XSTATE_BV alone, and KVM then
  // reports (and the guest gets) the SSE component's initial state.
  HUSK_TRY_ASSIGN(std::vector<uint8_t> xsave, t.vcpu.get_xsave(0));
  std::fill_n(xsave.begin() + kXmm0Offset, 16, kXmm0Byte);
  xsave[kXstateBvOffset] |= kXstateSse;
  HUSK_TRY(t.vcpu.set_xsave(xsave));
  kvm_debugregs debugregs{};
  debugregs.db[0] = kDr0;
  debugregs.db[1] = kDr1;
  debugregs.dr6 = 0xffff0ff0;
  debugregs.dr7 = kDr7;
  HUSK_TRY(t.vcpu.set_debugregs(debugregs));
  kvm_regs regs = x86::boot_regs(kCodeAddr);
  regs.rcx = 1000;
  regs.r15 = 0x1515151515151515;
  HUSK_TRY(t.vcpu.set_regs(regs));
  return {};
}

// Runs until the guest's next out to kPort; returns the value it wrote.
uint32_t run_to_next_out(const kvm::Vcpu& vcpu) {
  for (;;) {
    auto ran = vcpu.run();
    if (!ran && ran.error().code == EINTR) continue;
    REQUIRE(ran);
    const kvm_run* run = vcpu.run_state();
    INFO("exit reason " << run->exit_reason);
    REQUIRE(run->exit_reason == KVM_EXIT_IO);
    REQUIRE(run->io.direction == KVM_EXIT_IO_OUT);
    REQUIRE(run->io.port == kPort);
    REQUIRE(run->io.size == 4);
    uint32_t value = 0;
    // Safe: KVM put the 4 bytes at data_offset inside the kvm_run mapping.
    std::memcpy(&value, reinterpret_cast<const uint8_t*>(run) + run->io.data_offset, sizeof(value));
    return value;
  }
}

// Completes the instruction of the last exit without running the guest on
// (api.rst, section 5: the note after KVM_EXIT_MMIO); false if KVM_RUN did
// anything but return EINTR.
bool complete_pending_exit(const kvm::Vcpu& vcpu) {
  vcpu.run_state()->immediate_exit = 1;
  auto ran = vcpu.run();
  vcpu.run_state()->immediate_exit = 0;
  return !ran && ran.error().code == EINTR;
}

bool same_segment(const kvm_segment& a, const kvm_segment& b) {
  return a.base == b.base && a.limit == b.limit && a.selector == b.selector && a.type == b.type &&
         a.present == b.present && a.dpl == b.dpl && a.db == b.db && a.s == b.s && a.l == b.l && a.g == b.g &&
         a.avl == b.avl;
}

template <typename T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// MSRs whose value moves on by itself between a save and a read-back.
bool counts_by_itself(uint32_t index) {
  return index == x86::kMsrIa32Tsc;
}

kvm_msr_entry msr_entry(uint32_t index, uint64_t value = 0) {
  kvm_msr_entry entry{};
  entry.index = index;
  entry.data = value;
  return entry;
}

}  // namespace

TEST_CASE("a vCPU's state and memory move to a new VM, and its guest goes on counting", "[kvm]") {
  auto kvm = kvm::Kvm::open();
  REQUIRE(kvm);
  const std::vector<kvm_cpuid_entry2> cpuid = guest_cpuid(*kvm);
  auto first = TinyVm::create(*kvm, cpuid);
  REQUIRE(first);
  auto started = start_counting_guest(*first);
  INFO((started ? "" : started.error().message));
  REQUIRE(started);

  // Some rounds, then a pause as the VMM makes one: nothing half done.
  uint32_t last = 0;
  for (int i = 0; i < 50; ++i) {
    const uint32_t value = run_to_next_out(first->vcpu);
    CHECK(value == last + 1);
    last = value;
  }
  REQUIRE(complete_pending_exit(first->vcpu));

  auto msrs = kvm::saved_msr_indices(*kvm, first->vcpu);
  REQUIRE(msrs);
  auto listed = kvm->msr_index_list();
  REQUIRE(listed);
  INFO(msrs->size() << " MSRs readable; KVM lists " << listed->size() << ", and the 28 MTRRs are added");
  CHECK(msrs->size() > 10);
  CHECK(msrs->size() <= listed->size() + 28);
  auto vcpu_state = kvm::save_vcpu_state(*kvm, first->vcpu, *msrs);
  INFO((vcpu_state ? "" : vcpu_state.error().message));
  REQUIRE(vcpu_state);
  auto vm_state = kvm::save_vm_state(first->vm);
  REQUIRE(vm_state);
  const kvm::VcpuState& saved = *vcpu_state;

  // What was saved is what the guest was doing.
  CHECK(saved.mp_state.mp_state == KVM_MP_STATE_RUNNABLE);
  CHECK(saved.regs.rip == kCodeAddr + 17);  // the jmp after the out
  CHECK(saved.regs.rax == last);
  CHECK(saved.regs.rcx == 1000 + last);
  CHECK(saved.regs.r15 == 0x1515151515151515);
  CHECK((saved.sregs.efer & x86::kEferLma) != 0);
  CHECK(saved.xsave.size() >= 4096);
  CHECK(saved.xsave.size() == std::max<size_t>(kvm->xsave2_size(), 4096));
  CHECK(saved.xsave[kXmm0Offset] == kXmm0Byte);
  CHECK(saved.xsave[kXmm0Offset + 15] == kXmm0Byte);
  REQUIRE(saved.xcrs.nr_xcrs >= 1);
  CHECK(saved.xcrs.xcrs[0].value == kXcr0X87Sse);
  CHECK(saved.debugregs.db[0] == kDr0);
  CHECK(saved.debugregs.db[1] == kDr1);
  CHECK((saved.debugregs.dr7 & 0xff) == (kDr7 & 0xff));
  REQUIRE(saved.msrs.size() == msrs->size());
  auto lstar = std::find_if(saved.msrs.begin(), saved.msrs.end(),
                            [](const kvm_msr_entry& e) { return e.index == x86::kMsrLstar; });
  REQUIRE(lstar != saved.msrs.end());
  CHECK(lstar->data == kLstar);
  auto mtrr_def_type = std::find_if(saved.msrs.begin(), saved.msrs.end(),
                                    [](const kvm_msr_entry& e) { return e.index == x86::kMsrMtrrDefType; });
  REQUIRE(mtrr_def_type != saved.msrs.end());
  CHECK(mtrr_def_type->data == (x86::kMtrrDefTypeEnable | x86::kMtrrTypeWriteBack));
  auto counter = first->memory.read_obj<uint32_t>(kCounterAddr);
  REQUIRE(counter);
  CHECK(*counter == last);

  // A second VM: the same CPUID, a copy of the memory, then the state.
  auto second = TinyVm::create(*kvm, cpuid);
  REQUIRE(second);
  std::memcpy(second->memory.regions().front().host(), first->memory.regions().front().host(), kMemorySize);
  auto vm_restored = kvm::restore_vm_state(second->vm, *vm_state);
  INFO((vm_restored ? "" : vm_restored.error().message));
  REQUIRE(vm_restored);
  auto restored = kvm::restore_vcpu_state(second->vcpu, saved);
  INFO((restored ? "" : restored.error().message));
  REQUIRE(restored);

  // Each part reads back as saved.
  auto regs = second->vcpu.get_regs();
  REQUIRE(regs);
  CHECK(same_bytes(*regs, saved.regs));
  auto sregs = second->vcpu.get_sregs();
  REQUIRE(sregs);
  for (auto [a, b] : {std::pair{&sregs->cs, &saved.sregs.cs}, std::pair{&sregs->ds, &saved.sregs.ds},
                      std::pair{&sregs->es, &saved.sregs.es}, std::pair{&sregs->fs, &saved.sregs.fs},
                      std::pair{&sregs->gs, &saved.sregs.gs}, std::pair{&sregs->ss, &saved.sregs.ss},
                      std::pair{&sregs->tr, &saved.sregs.tr}, std::pair{&sregs->ldt, &saved.sregs.ldt}}) {
    CHECK(same_segment(*a, *b));
  }
  CHECK(sregs->gdt.base == saved.sregs.gdt.base);
  CHECK(sregs->gdt.limit == saved.sregs.gdt.limit);
  CHECK(sregs->idt.base == saved.sregs.idt.base);
  CHECK(sregs->idt.limit == saved.sregs.idt.limit);
  CHECK(sregs->cr0 == saved.sregs.cr0);
  CHECK(sregs->cr2 == saved.sregs.cr2);
  CHECK(sregs->cr3 == saved.sregs.cr3);
  CHECK(sregs->cr4 == saved.sregs.cr4);
  CHECK(sregs->cr8 == saved.sregs.cr8);
  CHECK(sregs->efer == saved.sregs.efer);
  CHECK(sregs->apic_base == saved.sregs.apic_base);
  auto mp_state = second->vcpu.get_mp_state();
  REQUIRE(mp_state);
  CHECK(mp_state->mp_state == saved.mp_state.mp_state);
  auto xsave = second->vcpu.get_xsave(kvm->xsave2_size());
  REQUIRE(xsave);
  CHECK(*xsave == saved.xsave);
  auto xcrs = second->vcpu.get_xcrs();
  REQUIRE(xcrs);
  CHECK(same_bytes(*xcrs, saved.xcrs));
  auto debugregs = second->vcpu.get_debugregs();
  REQUIRE(debugregs);
  CHECK(std::equal(std::begin(debugregs->db), std::end(debugregs->db), std::begin(saved.debugregs.db)));
  CHECK(debugregs->dr6 == saved.debugregs.dr6);
  CHECK(debugregs->dr7 == saved.debugregs.dr7);
  auto lapic = second->vcpu.get_lapic();
  REQUIRE(lapic);
  CHECK(same_bytes(*lapic, saved.lapic));
  std::vector<kvm_msr_entry> read_back(saved.msrs.size());
  for (size_t i = 0; i < read_back.size(); ++i) read_back[i].index = saved.msrs[i].index;
  auto read = second->vcpu.get_msrs(read_back);
  REQUIRE(read);
  REQUIRE(*read == read_back.size());
  for (size_t i = 0; i < read_back.size(); ++i) {
    if (counts_by_itself(read_back[i].index)) continue;
    INFO("MSR " << std::hex << read_back[i].index);
    CHECK(read_back[i].data == saved.msrs[i].data);
  }
  auto events = second->vcpu.get_vcpu_events();
  REQUIRE(events);
  CHECK(events->exception.pending == saved.events.exception.pending);
  CHECK(events->interrupt.injected == saved.events.interrupt.injected);
  CHECK(events->nmi.pending == saved.events.nmi.pending);
  auto clock = second->vm.get_clock();
  REQUIRE(clock);
  CHECK(clock->clock >= vm_state->clock.clock);

  // Both guests go on from the saved count, the same way.
  for (int i = 1; i <= 20; ++i) {
    CHECK(run_to_next_out(second->vcpu) == last + static_cast<uint32_t>(i));
    CHECK(run_to_next_out(first->vcpu) == last + static_cast<uint32_t>(i));
  }
  REQUIRE(complete_pending_exit(second->vcpu));
  auto after = second->vcpu.get_regs();
  REQUIRE(after);
  CHECK(after->rcx == 1000 + last + 20);
  auto second_counter = second->memory.read_obj<uint32_t>(kCounterAddr);
  REQUIRE(second_counter);
  CHECK(*second_counter == last + 20);
}

TEST_CASE("saved_msr_indices keeps the MSRs a vCPU can read: KVM's list, then the MTRRs", "[kvm]") {
  auto kvm = kvm::Kvm::open();
  REQUIRE(kvm);
  auto t = TinyVm::create(*kvm, guest_cpuid(*kvm));
  REQUIRE(t);
  auto listed = kvm->msr_index_list();
  REQUIRE(listed);
  // KVM's list, then the MTRRs it emulates but does not list.
  std::vector<uint32_t> candidates = *listed;
  std::vector<uint32_t> mtrrs;
  for (uint32_t i = 0x200; i < 0x210; ++i) mtrrs.push_back(i);
  for (uint32_t i : {0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f, 0x2ff}) {
    mtrrs.push_back(i);
  }
  for (uint32_t index : mtrrs) {
    if (std::find(candidates.begin(), candidates.end(), index) == candidates.end()) candidates.push_back(index);
  }
  auto kept = kvm::saved_msr_indices(*kvm, t->vcpu);
  REQUIRE(kept);
  // A subsequence of the candidates: only refused ones are left out.
  auto it = candidates.begin();
  for (uint32_t index : *kept) {
    it = std::find(it, candidates.end(), index);
    REQUIRE(it != candidates.end());
  }
  CHECK(std::find(kept->begin(), kept->end(), x86::kMsrMtrrDefType) != kept->end());
  std::vector<kvm_msr_entry> entries;
  for (uint32_t index : *kept) entries.push_back(msr_entry(index));
  auto read = t->vcpu.get_msrs(entries);
  REQUIRE(read);
  CHECK(*read == entries.size());
  // The ones left out are refused one by one.
  const std::set<uint32_t> kept_set(kept->begin(), kept->end());
  std::string dropped;
  for (uint32_t index : candidates) {
    if (kept_set.count(index) != 0) continue;
    kvm_msr_entry one = msr_entry(index);
    auto got = t->vcpu.get_msrs(std::span(&one, 1));
    REQUIRE(got);
    CHECK(*got == 0);
    dropped += fmt::format(" {:#x}", index);
  }
  WARN("KVM lists " << listed->size() << " MSRs, and " << candidates.size() - listed->size() << " MTRRs more; "
                      << (dropped.empty() ? "this vCPU reads them all" : "this vCPU cannot read" + dropped));
}

TEST_CASE("a state KVM refuses is an error that names the part", "[kvm]") {
  auto kvm = kvm::Kvm::open();
  REQUIRE(kvm);
  const std::vector<kvm_cpuid_entry2> cpuid = guest_cpuid(*kvm);
  auto source = TinyVm::create(*kvm, cpuid);
  REQUIRE(source);
  auto msrs = kvm::saved_msr_indices(*kvm, source->vcpu);
  REQUIRE(msrs);
  auto state = kvm::save_vcpu_state(*kvm, source->vcpu, *msrs);
  REQUIRE(state);
  constexpr uint32_t kNoSuchMsr = 0xdeadbeef;

  SECTION("an MSR KVM does not know, in the middle of the list") {
    kvm::VcpuState bad = *state;
    bad.msrs.insert(bad.msrs.begin() + static_cast<std::ptrdiff_t>(bad.msrs.size() / 2), msr_entry(kNoSuchMsr, 1));
    auto target = TinyVm::create(*kvm, cpuid);
    REQUIRE(target);
    auto restored = kvm::restore_vcpu_state(target->vcpu, bad);
    REQUIRE_FALSE(restored);
    CHECK(restored.error().message == "KVM_SET_MSRS vCPU 0: MSR 0xdeadbeef was refused");
  }
  SECTION("an XSAVE area shorter than KVM reads") {
    kvm::VcpuState bad = *state;
    bad.xsave.resize(512);
    auto target = TinyVm::create(*kvm, cpuid);
    REQUIRE(target);
    auto restored = kvm::restore_vcpu_state(target->vcpu, bad);
    REQUIRE_FALSE(restored);
    CHECK(restored.error().message == "KVM_SET_XSAVE vCPU 0: the XSAVE state is 512 bytes, KVM reads 4096");
  }
  SECTION("an MP state that does not exist") {
    kvm::VcpuState bad = *state;
    bad.mp_state.mp_state = 0x7fff;
    auto target = TinyVm::create(*kvm, cpuid);
    REQUIRE(target);
    auto restored = kvm::restore_vcpu_state(target->vcpu, bad);
    REQUIRE_FALSE(restored);
    CHECK(restored.error().message.rfind("KVM_SET_MP_STATE vCPU 0: ", 0) == 0);
    CHECK(restored.error().code == EINVAL);
  }
  SECTION("saving an MSR the vCPU cannot read") {
    std::vector<uint32_t> asked = *msrs;
    asked.push_back(kNoSuchMsr);
    auto saved = kvm::save_vcpu_state(*kvm, source->vcpu, asked);
    REQUIRE_FALSE(saved);
    CHECK(saved.error().message == "KVM_GET_MSRS vCPU 0: MSR 0xdeadbeef could not be read");
  }
}

TEST_CASE("the PIT and irqchip state go through a save and a restore unchanged", "[kvm]") {
  auto kvm = kvm::Kvm::open();
  REQUIRE(kvm);
  const std::vector<kvm_cpuid_entry2> cpuid = guest_cpuid(*kvm);
  auto source = TinyVm::create(*kvm, cpuid);
  REQUIRE(source);

  // Channels 1 and 2 only: channel 0 would raise IRQ 0 and change the PICs'
  // request registers between the saves.
  auto pit = source->vm.get_pit2();
  REQUIRE(pit);
  for (int ch : {1, 2}) {
    kvm_pit_channel_state& c = pit->channels[ch];
    c.count = 0x1234 + static_cast<uint32_t>(ch);
    c.mode = 2;
    c.rw_mode = 3;  // low byte then high byte (8254 datasheet, control word RW bits)
    c.write_state = 3;
    c.read_state = 3;
    c.bcd = 0;
  }
  pit->channels[2].gate = 0;
  REQUIRE(source->vm.set_pit2(*pit));
  auto master = source->vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER);
  REQUIRE(master);
  master->chip.pic.imr = 0xf8;
  master->chip.pic.irq_base = 0x20;
  REQUIRE(source->vm.set_irqchip(*master));
  auto slave = source->vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE);
  REQUIRE(slave);
  slave->chip.pic.imr = 0xef;
  slave->chip.pic.irq_base = 0x28;
  REQUIRE(source->vm.set_irqchip(*slave));
  auto ioapic = source->vm.get_irqchip(KVM_IRQCHIP_IOAPIC);
  REQUIRE(ioapic);
  ioapic->chip.ioapic.redirtbl[4].fields.vector = 0x34;
  ioapic->chip.ioapic.redirtbl[4].fields.mask = 1;
  ioapic->chip.ioapic.redirtbl[9].fields.vector = 0x39;
  ioapic->chip.ioapic.redirtbl[9].fields.trig_mode = 1;
  ioapic->chip.ioapic.redirtbl[9].fields.mask = 1;
  REQUIRE(source->vm.set_irqchip(*ioapic));

  auto saved = kvm::save_vm_state(source->vm);
  REQUIRE(saved);
  CHECK(saved->pic_master.chip.pic.imr == 0xf8);
  CHECK(saved->pic_slave.chip.pic.irq_base == 0x28);
  CHECK(saved->ioapic.chip.ioapic.redirtbl[9].fields.vector == 0x39);
  CHECK(saved->pit.channels[1].count == 0x1235);

  auto target = TinyVm::create(*kvm, cpuid);
  REQUIRE(target);
  auto restored = kvm::restore_vm_state(target->vm, *saved);
  INFO((restored ? "" : restored.error().message));
  REQUIRE(restored);
  auto again = kvm::save_vm_state(target->vm);
  REQUIRE(again);

  CHECK(again->pic_master.chip_id == KVM_IRQCHIP_PIC_MASTER);
  CHECK(same_bytes(again->pic_master.chip.pic, saved->pic_master.chip.pic));
  CHECK(same_bytes(again->pic_slave.chip.pic, saved->pic_slave.chip.pic));
  CHECK(same_bytes(again->ioapic.chip.ioapic, saved->ioapic.chip.ioapic));
  CHECK(again->pit.flags == saved->pit.flags);
  for (int ch = 0; ch < 3; ++ch) {
    INFO("PIT channel " << ch);
    const kvm_pit_channel_state& a = again->pit.channels[ch];
    const kvm_pit_channel_state& b = saved->pit.channels[ch];
    // count_load_time is the host's time at the load: KVM sets it anew.
    CHECK(a.count == b.count);
    CHECK(a.latched_count == b.latched_count);
    CHECK(a.count_latched == b.count_latched);
    CHECK(a.status_latched == b.status_latched);
    CHECK(a.status == b.status);
    CHECK(a.read_state == b.read_state);
    CHECK(a.write_state == b.write_state);
    CHECK(a.write_latch == b.write_latch);
    CHECK(a.rw_mode == b.rw_mode);
    CHECK(a.mode == b.mode);
    CHECK(a.bcd == b.bcd);
    CHECK(a.gate == b.gate);
  }
  // kvmclock goes on from the saved value (plus, with KVM_CLOCK_REALTIME,
  // the real time since the save).
  CHECK(again->clock.clock >= saved->clock.clock);
  WARN("KVM_GET_CLOCK flags " << saved->clock.flags << ", KVM_CAP_XSAVE2 " << kvm->xsave2_size() << " bytes");
}

TEST_CASE("a paused vCPU saves its own state under the vcpu filter", "[kvm][seccomp]") {
  REQUIRE(seccomp::prepare({seccomp::ThreadClass::kVcpu}));
  const auto child = test::in_seccomp_child([] {
    // KVM serves only the process that made the VM: all of it in the child.
    auto kvm = kvm::Kvm::open();
    if (!kvm) return 1;
    auto supported = kvm->supported_cpuid();
    if (!supported) return 1;
    auto t = TinyVm::create(*kvm, x86::normalize_cpuid(*supported, 0, 1));
    if (!t || !start_counting_guest(*t)) return 1;
    // The builder's probe, before any filter (KVM_GET_MSR_INDEX_LIST is a
    // /dev/kvm ioctl no thread class has).
    auto msrs = kvm::saved_msr_indices(*kvm, t->vcpu);
    if (!msrs) return 1;
    if (!test::enter_as(seccomp::ThreadClass::kVcpu, "husk-vcpu0")) return 2;
    for (int i = 0; i < 3; ++i) {
      if (!t->vcpu.run() || t->vcpu.run_state()->exit_reason != KVM_EXIT_IO) return 3;
    }
    if (!complete_pending_exit(t->vcpu)) return 4;
    auto state = kvm::save_vcpu_state(*kvm, t->vcpu, *msrs);
    if (!state) {
      const std::string why = state.error().message + "\n";
      (void)!::write(STDERR_FILENO, why.data(), why.size());
      return 5;
    }
    if (state->regs.rax != 3 || state->msrs.size() != msrs->size()) return 6;
    // The save got through; the report below must come from what follows.
    (void)!::write(STDERR_FILENO, "saved\n", 6);
    // Restoring is the builder's, before the thread runs: not allowed here.
    (void)!kvm::restore_vcpu_state(t->vcpu, *state);
    return 7;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == seccomp::kExitSeccompViolation);
  CHECK(child.err ==
        "saved\nhusk: seccomp: the vcpu thread \"husk-vcpu0\" made a forbidden system call: ioctl (16); husk stops "
        "(exit 200)\n");
}

TEST_CASE("the control thread saves the VM state and writes files under the vmm filter", "[kvm][seccomp]") {
  REQUIRE(seccomp::prepare({seccomp::ThreadClass::kVmm}));
  test::TempDir dir;
  const std::string path = dir.file("vm.state");
  const auto child = test::in_seccomp_child([&path] {
    auto kvm = kvm::Kvm::open();
    if (!kvm) return 1;
    auto supported = kvm->supported_cpuid();
    if (!supported) return 1;
    auto t = TinyVm::create(*kvm, x86::normalize_cpuid(*supported, 0, 1));
    if (!t) return 1;
    // Snapshot files are opened before the filter (the vmm class opens none).
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return 1;
    if (!test::enter_as(seccomp::ThreadClass::kVmm, "husk-vmm")) return 2;
    auto state = kvm::save_vm_state(t->vm);
    if (!state) {
      const std::string why = state.error().message + "\n";
      (void)!::write(STDERR_FILENO, why.data(), why.size());
      return 3;
    }
    if (::ftruncate(fd, 2 * sizeof(kvm::VmState)) != 0) return 4;
    if (::pwrite(fd, &*state, sizeof(kvm::VmState), sizeof(kvm::VmState)) != sizeof(kvm::VmState)) return 5;
    if (::lseek(fd, 0, SEEK_END) != static_cast<off_t>(2 * sizeof(kvm::VmState))) return 6;
    if (::fsync(fd) != 0) return 7;
    ::close(fd);
    (void)!::write(STDERR_FILENO, "written\n", 8);
    // Setting the VM's state is the restore's, before the filter.
    (void)!kvm::restore_vm_state(t->vm, *state);
    return 8;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == seccomp::kExitSeccompViolation);
  CHECK(child.err ==
        "written\nhusk: seccomp: the vmm thread \"husk-vmm\" made a forbidden system call: ioctl (16); husk stops "
        "(exit 200)\n");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  REQUIRE(file != nullptr);
  std::fseek(file, 0, SEEK_END);
  CHECK(std::ftell(file) == static_cast<long>(2 * sizeof(kvm::VmState)));
  std::fclose(file);
}
