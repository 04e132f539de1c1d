// make_tiny_elf: wraps raw x86_64 machine code in a minimal vmlinux-shaped
// ELF (one PT_LOAD at a physical address, entry at its start), so KVM tests
// can boot hand-made guests through the same loader path as a real kernel;
// elf64_exec_header for tests that lay out their own ELF files.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace husk::test {

// The header of an x86_64 executable whose `phnum` program headers follow
// it at once.
inline Elf64_Ehdr elf64_exec_header(uint64_t entry, uint16_t phnum) {
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = phnum;
  return eh;
}

inline std::vector<uint8_t> make_tiny_elf(const std::vector<uint8_t>& code,
                                          uint64_t paddr = 0x1000000, uint64_t memsz = 0) {
  const Elf64_Ehdr eh = elf64_exec_header(paddr, 1);
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_flags = PF_R | PF_X;
  ph.p_offset = 0x1000;
  ph.p_vaddr = paddr;
  ph.p_paddr = paddr;
  ph.p_filesz = code.size();
  ph.p_memsz = memsz > code.size() ? memsz : code.size();
  ph.p_align = 0x1000;
  std::vector<uint8_t> file(0x1000 + code.size(), 0);
  std::memcpy(file.data(), &eh, sizeof(eh));
  std::memcpy(file.data() + sizeof(eh), &ph, sizeof(ph));
  std::memcpy(file.data() + 0x1000, code.data(), code.size());
  return file;
}

// Tiny assembler helpers for the test guests (64-bit mode).
struct Asm {
  std::vector<uint8_t> bytes;
  Asm& raw(std::initializer_list<uint8_t> b) {
    bytes.insert(bytes.end(), b);
    return *this;
  }
  Asm& mov_dx(uint16_t v) { return raw({0x66, 0xba, uint8_t(v), uint8_t(v >> 8)}); }
  Asm& mov_al(uint8_t v) { return raw({0xb0, v}); }
  Asm& out_dx_al() { return raw({0xee}); }
  Asm& in_al_dx() { return raw({0xec}); }
  Asm& out_imm_al(uint8_t port) { return raw({0xe6, port}); }
  // Writes each character to COM1.
  Asm& print(const char* s) {
    mov_dx(0x3f8);
    for (; *s; ++s) mov_al(static_cast<uint8_t>(*s)).out_dx_al();
    return *this;
  }
  // Resets the VM through the i8042, then spins.
  Asm& reset() { return mov_al(0xfe).out_imm_al(0x64).raw({0xf4, 0xeb, 0xfd}); }
  Asm& spin() { return raw({0xeb, 0xfe}); }
};

}  // namespace husk::test
