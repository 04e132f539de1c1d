#include "runtime/arch/x86_64/elf_loader.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "runtime/arch/x86_64/kernel_writer.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/units.h"

namespace husk::x86_64 {

namespace {

Result<Elf64_Ehdr> read_header(std::span<const uint8_t> file) {
  if (file.size() < sizeof(Elf64_Ehdr)) {
    return fail(fmt::format("ELF file is {} bytes, too short for an ELF header", file.size()));
  }
  Elf64_Ehdr ehdr;
  // Safe: the size was checked above and Elf64_Ehdr is plain integers, so any
  // bytes are a valid value; each field is validated before use.
  std::memcpy(&ehdr, file.data(), sizeof(ehdr));
  if (std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0) return fail("not an ELF file (bad magic)");
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64) return fail("ELF file is not 64-bit (ELFCLASS64)");
  if (ehdr.e_ident[EI_DATA] != ELFDATA2LSB) return fail("ELF file is not little-endian");
  if (ehdr.e_machine != EM_X86_64) {
    return fail(fmt::format("ELF machine is {}, not x86_64 ({})", ehdr.e_machine, EM_X86_64));
  }
  if (ehdr.e_type != ET_EXEC) {
    return fail(fmt::format("ELF type is {}, not an executable (ET_EXEC)", ehdr.e_type));
  }
  if (ehdr.e_phentsize != sizeof(Elf64_Phdr)) {
    return fail(fmt::format("ELF program header size is {}, expected {}", ehdr.e_phentsize,
                            sizeof(Elf64_Phdr)));
  }
  if (ehdr.e_phnum == 0) return fail("ELF file has no program headers");
  // e_phnum is 16 bits, so the table size cannot overflow; e_phoff is
  // compared without a sum that could wrap.
  const uint64_t table_size = uint64_t{ehdr.e_phnum} * sizeof(Elf64_Phdr);
  if (ehdr.e_phoff > file.size() || table_size > file.size() - ehdr.e_phoff) {
    return fail(fmt::format("ELF program header table ({} entries at offset {:#x}) runs past the "
                            "end of the {}-byte file",
                            ehdr.e_phnum, ehdr.e_phoff, file.size()));
  }
  return ehdr;
}

Result<void> check_segment(const GuestMemory& memory, std::span<const uint8_t> file,
                           const Elf64_Phdr& phdr) {
  if (phdr.p_offset > file.size() || phdr.p_filesz > file.size() - phdr.p_offset) {
    return fail(fmt::format("ELF segment at offset {:#x} with {:#x} bytes runs past the end of "
                            "the {}-byte file",
                            phdr.p_offset, phdr.p_filesz, file.size()));
  }
  if (phdr.p_filesz > phdr.p_memsz) {
    return fail(fmt::format("ELF segment has more file bytes ({:#x}) than memory bytes ({:#x})",
                            phdr.p_filesz, phdr.p_memsz));
  }
  if (phdr.p_paddr + phdr.p_memsz < phdr.p_paddr) {
    return fail(fmt::format("ELF segment at {:#x} of {:#x} bytes wraps around the address space",
                            phdr.p_paddr, phdr.p_memsz));
  }
  // Below 1 MiB live the zero page, page tables, command line and MP table.
  if (phdr.p_paddr < kHighMemStart) {
    return fail(fmt::format("ELF segment at {:#x} is below 1 MiB, where the boot structures live",
                            phdr.p_paddr));
  }
  if (!memory.valid_range(phdr.p_paddr, phdr.p_memsz)) {
    return fail(fmt::format("kernel needs {} MiB of guest memory, the VM has {} MiB",
                            mib_rounded_up(phdr.p_paddr + phdr.p_memsz),
                            memory.total_size() / kMiB));
  }
  return {};
}

// vmlinux links e_entry as a physical address (phys_startup_64); an ELF that
// gives a virtual one is translated through the segment that holds it.
std::optional<uint64_t> physical_entry(uint64_t entry, std::span<const Elf64_Phdr> loads) {
  for (const Elf64_Phdr& p : loads) {
    if (entry >= p.p_paddr && entry - p.p_paddr < p.p_memsz) return entry;
  }
  for (const Elf64_Phdr& p : loads) {
    if (entry >= p.p_vaddr && entry - p.p_vaddr < p.p_memsz) return p.p_paddr + (entry - p.p_vaddr);
  }
  return std::nullopt;
}

}  // namespace

Result<KernelPlan> plan_elf(const GuestMemory& memory, std::span<const uint8_t> file) {
  HUSK_TRY_ASSIGN(const Elf64_Ehdr ehdr, read_header(file));

  // Every segment is validated before any is copied, so a bad file leaves
  // guest memory untouched.
  std::vector<Elf64_Phdr> loads;
  for (uint16_t i = 0; i < ehdr.e_phnum; ++i) {
    Elf64_Phdr phdr;
    // Safe: read_header checked that the whole table lies inside the file;
    // the fields are plain integers, checked by check_segment before use.
    std::memcpy(&phdr, file.data() + ehdr.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr), sizeof(phdr));
    if (phdr.p_type != PT_LOAD) continue;
    HUSK_TRY(check_segment(memory, file, phdr));
    loads.push_back(phdr);
  }
  if (loads.empty()) return fail("ELF file has no PT_LOAD segment");

  const std::optional<uint64_t> entry = physical_entry(ehdr.e_entry, loads);
  if (!entry) {
    return fail(fmt::format("ELF entry point {:#x} is not inside any loaded segment", ehdr.e_entry));
  }

  KernelPlan plan;
  plan.fit_page_sizes = true;
  plan.image.entry = *entry;
  plan.image.load_start = UINT64_MAX;
  for (const Elf64_Phdr& p : loads) {
    plan.segments.push_back({p.p_paddr, p.p_offset, p.p_filesz, p.p_memsz});
    plan.image.load_start = std::min(plan.image.load_start, p.p_paddr);
    plan.image.load_end = std::max(plan.image.load_end, p.p_paddr + p.p_memsz);
  }
  return plan;
}

Result<KernelImage> load_elf(const GuestMemory& memory, std::span<const uint8_t> file, int fd, Destination dest) {
  HUSK_TRY_ASSIGN(const KernelPlan plan, plan_elf(memory, file));
  return write_kernel(memory, plan, file, fd, dest);
}

}  // namespace husk::x86_64
