// write_kernel: copies a planned kernel (KernelPlan, from plan_elf or
// plan_bzimage) into guest memory. Planning reads only headers and writes
// nothing, so a VMM can place the initrd and start copying both at once.
#pragma once

#include <span>
#include <vector>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// A run of the kernel file's bytes bound for guest memory.
struct FilePiece {
  uint64_t gpa = 0;
  uint64_t file_offset = 0;
  uint64_t len = 0;
};

// The data of `len` bytes of the file `fd` from `file_offset`, bound for
// `gpa`, its holes left out (a new VM's memory reads as zero there;
// GuestMemory::data_extents).
[[nodiscard]] Result<std::vector<FilePiece>> file_data(int fd, uint64_t gpa, uint64_t file_offset, uint64_t len);

// file_data of every planned segment.
[[nodiscard]] Result<std::vector<FilePiece>> kernel_data(const KernelPlan& plan, int fd);

// A FilePiece resolved to the host memory it lands in. Valid as long as
// the guest memory's mappings are: moving the GuestMemory object that owns
// them does not move them, so a copy may start before the VM that will own
// the memory exists.
struct HostPiece {
  std::span<uint8_t> dst;
  uint64_t file_offset = 0;
};

// `pieces` in `memory` (GuestMemory::slice): an error for a piece outside
// one region.
[[nodiscard]] Result<std::vector<HostPiece>> resolve_pieces(const GuestMemory& memory,
                                                            std::span<const FilePiece> pieces);

// Reads `pieces` of the file `fd` into place, as they are; allocates only
// for an error.
[[nodiscard]] Result<void> read_pieces(int fd, std::span<const HostPiece> pieces);

// Before a load into a new VM's memory: page sizes to suit the pieces
// (GuestMemory::fit_page_sizes).
void fit_page_sizes(const GuestMemory& memory, std::span<const FilePiece> pieces);

// `file` is the kernel's bytes and `fd` its descriptor (or -1). With the
// descriptor, the segments are read from it (GuestMemory::read_file, with
// `dest`) and no page of `file` is touched; without it they are copied
// from `file`. A segment's bss is zeroed unless `dest` says the memory is
// (Destination::kZeroed: touching it would cost its pages now rather than
// when the guest uses them).
[[nodiscard]] Result<KernelImage> write_kernel(const GuestMemory& memory, const KernelPlan& plan,
                                               std::span<const uint8_t> file, int fd, Destination dest);

}  // namespace husk::x86_64
