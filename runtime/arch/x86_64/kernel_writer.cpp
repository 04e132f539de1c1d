#include "runtime/arch/x86_64/kernel_writer.h"

#include <vector>

namespace husk::x86_64 {

namespace {

// Every range the segments will write into a new VM's memory, for
// GuestMemory::fit_page_sizes: the file's data, not its holes.
Result<std::vector<GuestExtent>> planned_writes(const KernelPlan& plan, int fd) {
  std::vector<GuestExtent> writes;
  for (const KernelSegment& s : plan.segments) {
    if (fd < 0) {
      writes.push_back({s.gpa, s.file_len});
      continue;
    }
    HUSK_TRY_ASSIGN(const std::vector<GuestExtent> data,
                    GuestMemory::data_extents(s.gpa, fd, s.file_offset, s.file_len));
    writes.insert(writes.end(), data.begin(), data.end());
  }
  return writes;
}

}  // namespace

Result<KernelImage> write_kernel(const GuestMemory& memory, const KernelPlan& plan, std::span<const uint8_t> file,
                                 int fd, Destination dest) {
  if (dest == Destination::kZeroed && plan.fit_page_sizes) {
    HUSK_TRY_ASSIGN(const std::vector<GuestExtent> writes, planned_writes(plan, fd));
    memory.fit_page_sizes(writes);
  }
  for (const KernelSegment& s : plan.segments) {
    // Safe: the plan checked the file range and the guest range.
    if (fd >= 0) {
      HUSK_TRY(memory.read_file(s.gpa, fd, s.file_offset, s.file_len, dest));
    } else {
      if (s.file_offset > file.size() || s.file_len > file.size() - s.file_offset) {
        return fail("kernel segment runs past the end of the file");
      }
      HUSK_TRY(memory.write(s.gpa, file.subspan(s.file_offset, s.file_len)));
    }
    if (dest != Destination::kZeroed && s.mem_len > s.file_len) {
      HUSK_TRY(memory.fill(s.gpa + s.file_len, 0, s.mem_len - s.file_len));
    }
  }
  return plan.image;
}

}  // namespace husk::x86_64
