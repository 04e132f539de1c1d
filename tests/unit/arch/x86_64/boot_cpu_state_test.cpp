#include "runtime/arch/x86_64/boot_cpu_state.h"

#include <algorithm>

#include "runtime/arch/x86_64/gdt.h"
#include "runtime/arch/x86_64/layout.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using namespace husk::x86_64::test;

TEST_CASE("segment_from_gdt_entry decodes the 64-bit code segment", "[arch][gdt]") {
  const kvm_segment cs = segment_from_gdt_entry(boot_gdt()[2], kBootCodeSelector);
  CHECK(cs.selector == 0x10);
  CHECK(cs.base == 0);
  CHECK(cs.limit == 0xffffffff);
  CHECK(cs.type == 0xb);
  CHECK(cs.present == 1);
  CHECK(cs.dpl == 0);
  CHECK(cs.s == 1);
  CHECK(cs.l == 1);
  CHECK(cs.db == 0);
  CHECK(cs.g == 1);
  CHECK(cs.unusable == 0);
}

TEST_CASE("segment_from_gdt_entry decodes data, TSS, base and null", "[arch][gdt]") {
  const kvm_segment ds = segment_from_gdt_entry(boot_gdt()[3], kBootDataSelector);
  CHECK(ds.type == 0x3);
  CHECK(ds.db == 1);
  CHECK(ds.l == 0);
  CHECK(ds.limit == 0xffffffff);

  const kvm_segment tr = segment_from_gdt_entry(boot_gdt()[4], kBootTssSelector);
  CHECK(tr.type == 0xb);
  CHECK(tr.s == 0);

  const kvm_segment based = segment_from_gdt_entry(gdt_entry(0x0093, 0x12345678, 0xabcde), 0x8);
  CHECK(based.base == 0x12345678);
  CHECK(based.limit == 0xabcde);  // byte granular: not scaled
  CHECK(based.g == 0);

  const kvm_segment null = segment_from_gdt_entry(0, 0);
  CHECK(null.present == 0);
  CHECK(null.unusable == 1);
}

TEST_CASE("write_boot_gdt writes the GDT and an empty IDT", "[arch][gdt]") {
  GuestMemory memory = make_memory();
  REQUIRE(memory.fill(kGdtAddr, 0xff, 0x100));
  REQUIRE(write_boot_gdt(memory));
  auto gdt = memory.read_obj<BootGdt>(kGdtAddr);
  REQUIRE(gdt);
  CHECK(*gdt == boot_gdt());
  CHECK((*gdt)[0] == 0);
  CHECK((*gdt)[1] == 0);
  CHECK(memory.read_obj<uint64_t>(kIdtAddr).value() == 0);
}

TEST_CASE("setup_long_mode_sregs enters long mode on the boot GDT", "[arch][cpu]") {
  kvm_sregs sregs{};
  sregs.cr0 = 0x60000010;  // reset value: CD, NW, ET
  sregs.apic_base = 0xfee00900;
  setup_long_mode_sregs(sregs);

  CHECK(sregs.gdt.base == kGdtAddr);
  CHECK(sregs.gdt.limit == 5 * 8 - 1);
  CHECK(sregs.idt.base == kIdtAddr);
  CHECK(sregs.idt.limit == 7);
  CHECK(sregs.cs.selector == kBootCodeSelector);
  CHECK(sregs.cs.l == 1);
  for (const kvm_segment& s : {sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss}) {
    CHECK(s.selector == kBootDataSelector);
    CHECK(s.type == 0x3);
  }
  CHECK(sregs.tr.selector == kBootTssSelector);
  CHECK(sregs.cr0 == (kCr0Pe | kCr0Et | kCr0Pg));
  CHECK(sregs.cr3 == kPml4Addr);
  CHECK(sregs.cr4 == kCr4Pae);
  CHECK(sregs.efer == (kEferLme | kEferLma));
  CHECK(sregs.apic_base == 0xfee00900);
}

TEST_CASE("boot_regs follows the 64-bit boot protocol", "[arch][cpu]") {
  const kvm_regs regs = boot_regs(0x1000200);
  CHECK(regs.rip == 0x1000200);
  CHECK(regs.rsi == kZeroPageAddr);
  CHECK(regs.rsp == kBootStackPointer);
  CHECK(regs.rbp == kBootStackPointer);
  CHECK(regs.rflags == 0x2);
  CHECK(regs.rax == 0);
}

TEST_CASE("boot_msrs sets MTRRs to write-back and fast strings on", "[arch][cpu]") {
  const std::vector<kvm_msr_entry> msrs = boot_msrs();
  auto value = [&](uint32_t index) {
    auto it = std::find_if(msrs.begin(), msrs.end(),
                           [&](const kvm_msr_entry& e) { return e.index == index; });
    REQUIRE(it != msrs.end());
    return it->data;
  };
  CHECK(msrs.size() == 11);
  CHECK(value(kMsrMtrrDefType) == 0x806);
  CHECK(value(kMsrIa32MiscEnable) == 1);
  CHECK(value(kMsrLstar) == 0);
  CHECK(value(kMsrIa32Tsc) == 0);
  CHECK(value(kMsrIa32SysenterCs) == 0);
}

TEST_CASE("boot_fpu is the reset x87 and SSE state", "[arch][cpu]") {
  const kvm_fpu fpu = boot_fpu();
  CHECK(fpu.fcw == 0x37f);
  CHECK(fpu.mxcsr == 0x1f80);
}

}  // namespace
}  // namespace husk::x86_64
