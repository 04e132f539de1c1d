// Test helpers: guest memory for the x86_64 boot tests and kernel files made
// byte by byte (a minimal ELF64 executable, a minimal bzImage setup header),
// so the loaders are tested without a real kernel on disk.
#pragma once

#include <elf.h>

#include <asm/bootparam.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/arch/x86_64/bzimage_loader.h"
#include "runtime/arch/x86_64/units.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64::test {

inline GuestMemory make_memory(const std::vector<RegionSpec>& regions = {{0, 64 * kMiB}}) {
  auto memory = GuestMemory::create(regions);
  REQUIRE(memory);
  return std::move(*memory);
}

// Overwrites sizeof(T) bytes of `bytes` at `offset`, for corrupting a field.
template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t offset, T value) {
  REQUIRE(offset + sizeof(T) <= bytes.size());
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

template <typename T>
T peek(std::span<const uint8_t> bytes, size_t offset) {
  T value;
  REQUIRE(offset + sizeof(T) <= bytes.size());
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

inline std::vector<uint8_t> pattern(size_t size, uint8_t seed = 1) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7);
  return bytes;
}

struct TestSegment {
  uint64_t paddr;
  uint64_t vaddr;
  std::vector<uint8_t> data;
  uint64_t memsz;
};

inline constexpr uint64_t kVmlinuxPhys = 0x1000000;
inline constexpr uint64_t kVmlinuxVirt = 0xffffffff81000000;

// ELF header, then the program headers, then each segment's bytes.
inline std::vector<uint8_t> make_elf(uint64_t entry, const std::vector<TestSegment>& segments) {
  Elf64_Ehdr ehdr{};
  std::memcpy(ehdr.e_ident, ELFMAG, SELFMAG);
  ehdr.e_ident[EI_CLASS] = ELFCLASS64;
  ehdr.e_ident[EI_DATA] = ELFDATA2LSB;
  ehdr.e_ident[EI_VERSION] = EV_CURRENT;
  ehdr.e_type = ET_EXEC;
  ehdr.e_machine = EM_X86_64;
  ehdr.e_version = EV_CURRENT;
  ehdr.e_entry = entry;
  ehdr.e_phoff = sizeof(Elf64_Ehdr);
  ehdr.e_ehsize = sizeof(Elf64_Ehdr);
  ehdr.e_phentsize = sizeof(Elf64_Phdr);
  ehdr.e_phnum = static_cast<uint16_t>(segments.size());

  std::vector<uint8_t> file(sizeof(Elf64_Ehdr) + segments.size() * sizeof(Elf64_Phdr));
  std::memcpy(file.data(), &ehdr, sizeof(ehdr));
  for (size_t i = 0; i < segments.size(); ++i) {
    Elf64_Phdr phdr{};
    phdr.p_type = PT_LOAD;
    phdr.p_flags = PF_R | PF_X;
    phdr.p_offset = file.size();
    phdr.p_vaddr = segments[i].vaddr;
    phdr.p_paddr = segments[i].paddr;
    phdr.p_filesz = segments[i].data.size();
    phdr.p_memsz = segments[i].memsz;
    phdr.p_align = 0x200000;
    std::memcpy(file.data() + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr), &phdr, sizeof(phdr));
    file.insert(file.end(), segments[i].data.begin(), segments[i].data.end());
  }
  return file;
}

// The offset of field `member` of program header `index`.
inline size_t phdr_field(size_t index, size_t member_offset) {
  return sizeof(Elf64_Ehdr) + index * sizeof(Elf64_Phdr) + member_offset;
}

// A vmlinux-like file: one segment at 16 MiB with 0x300 file bytes and a
// bss that brings it to 0x3000 bytes.
inline std::vector<uint8_t> make_vmlinux() {
  return make_elf(kVmlinuxPhys, {{kVmlinuxPhys, kVmlinuxVirt, pattern(0x300), 0x3000}});
}

inline constexpr uint64_t kBzSetupSects = 4;
inline constexpr uint64_t kBzKernelOffset = (kBzSetupSects + 1) * 512;
inline constexpr uint64_t kBzPayloadSize = 0x2000;

// A bzImage as the 6.1 build writes it: boot sector and setup sectors with
// the setup header at 0x1f1, then the protected-mode payload, padded to
// syssize paragraphs.
inline setup_header default_bz_header() {
  setup_header hdr{};
  hdr.setup_sects = kBzSetupSects;
  hdr.syssize = kBzPayloadSize / 16;
  hdr.boot_flag = kBootFlagMagic;
  // A short jump over the header: "eb 6a" ends the header at 0x26c.
  hdr.jump = 0x6aeb;
  hdr.header = kHdrsMagic;
  hdr.version = 0x020f;
  hdr.loadflags = LOADED_HIGH;
  hdr.initrd_addr_max = 0x7fffffff;
  hdr.kernel_alignment = 0x1000000;
  hdr.relocatable_kernel = 1;
  hdr.min_alignment = 21;
  hdr.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
  hdr.cmdline_size = 2047;
  hdr.pref_address = 0x1000000;
  hdr.init_size = 4 * kMiB;
  return hdr;
}

inline std::vector<uint8_t> make_bzimage(const setup_header& hdr = default_bz_header()) {
  const uint64_t sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
  std::vector<uint8_t> file((sects + 1) * 512, 0);
  std::memcpy(file.data() + kSetupHeaderOffset, &hdr, sizeof(hdr));
  const std::vector<uint8_t> payload = pattern(kBzPayloadSize, 3);
  file.insert(file.end(), payload.begin(), payload.end());
  return file;
}

}  // namespace husk::x86_64::test
