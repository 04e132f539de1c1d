#include "runtime/arch/x86_64/kernel_writer.h"

#include "runtime/common/file.h"

namespace husk::x86_64 {

Result<std::vector<FilePiece>> file_data(int fd, uint64_t gpa, uint64_t file_offset, uint64_t len) {
  HUSK_TRY_ASSIGN(const std::vector<GuestExtent> data, GuestMemory::data_extents(gpa, fd, file_offset, len));
  std::vector<FilePiece> pieces;
  pieces.reserve(data.size());
  for (const GuestExtent& e : data) pieces.push_back({e.gpa, file_offset + (e.gpa - gpa), e.len});
  return pieces;
}

Result<std::vector<FilePiece>> kernel_data(const KernelPlan& plan, int fd) {
  std::vector<FilePiece> pieces;
  for (const KernelSegment& s : plan.segments) {
    HUSK_TRY_ASSIGN(const std::vector<FilePiece> data, file_data(fd, s.gpa, s.file_offset, s.file_len));
    pieces.insert(pieces.end(), data.begin(), data.end());
  }
  return pieces;
}

Result<std::vector<HostPiece>> resolve_pieces(const GuestMemory& memory, std::span<const FilePiece> pieces) {
  std::vector<HostPiece> host;
  host.reserve(pieces.size());
  for (const FilePiece& p : pieces) {
    HUSK_TRY_ASSIGN(const std::span<uint8_t> dst, memory.slice(p.gpa, p.len));
    host.push_back({dst, p.file_offset});
  }
  return host;
}

Result<void> read_pieces(int fd, std::span<const HostPiece> pieces) {
  for (const HostPiece& p : pieces) HUSK_TRY(read_exact_at(fd, p.dst, p.file_offset));
  return {};
}

void fit_page_sizes(const GuestMemory& memory, std::span<const FilePiece> pieces) {
  std::vector<GuestExtent> writes;
  writes.reserve(pieces.size());
  for (const FilePiece& p : pieces) writes.push_back({p.gpa, p.len});
  memory.fit_page_sizes(writes);
}

Result<KernelImage> write_kernel(const GuestMemory& memory, const KernelPlan& plan, std::span<const uint8_t> file,
                                 int fd, Destination dest) {
  if (fd >= 0 && dest == Destination::kZeroed) {
    // Only the file's data: its holes and the bss read as zero already.
    HUSK_TRY_ASSIGN(const std::vector<FilePiece> pieces, kernel_data(plan, fd));
    if (plan.fit_page_sizes) fit_page_sizes(memory, pieces);
    HUSK_TRY_ASSIGN(const std::vector<HostPiece> host, resolve_pieces(memory, pieces));
    HUSK_TRY(read_pieces(fd, host));
    return plan.image;
  }
  if (dest == Destination::kZeroed && plan.fit_page_sizes) {  // from `file`: every byte of it
    std::vector<FilePiece> pieces;
    for (const KernelSegment& s : plan.segments) pieces.push_back({s.gpa, s.file_offset, s.file_len});
    fit_page_sizes(memory, pieces);
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
