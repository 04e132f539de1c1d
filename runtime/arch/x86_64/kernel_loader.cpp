#include "runtime/arch/x86_64/kernel_loader.h"

#include <elf.h>

#include <cstring>

#include "runtime/arch/x86_64/bzimage_loader.h"
#include "runtime/arch/x86_64/elf_loader.h"
#include "runtime/arch/x86_64/kernel_writer.h"

namespace husk::x86_64 {

namespace {

bool has_elf_magic(std::span<const uint8_t> file) {
  return file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0;
}

bool has_hdrs_magic(std::span<const uint8_t> file) {
  uint32_t magic = 0;
  if (file.size() < kHdrsOffset + sizeof(magic)) return false;
  // Safe: the size was checked; any four bytes are a valid uint32_t.
  std::memcpy(&magic, file.data() + kHdrsOffset, sizeof(magic));
  return magic == kHdrsMagic;
}

}  // namespace

Result<KernelPlan> plan_kernel(const GuestMemory& memory, std::span<const uint8_t> file) {
  if (has_elf_magic(file)) return plan_elf(memory, file);
  if (has_hdrs_magic(file)) return plan_bzimage(memory, file);
  return fail("not a vmlinux ELF or a bzImage (no ELF magic, no HdrS header)");
}

Result<KernelImage> load_kernel(const GuestMemory& memory, std::span<const uint8_t> file, int fd,
                                Destination dest) {
  HUSK_TRY_ASSIGN(const KernelPlan plan, plan_kernel(memory, file));
  return write_kernel(memory, plan, file, fd, dest);
}

}  // namespace husk::x86_64
