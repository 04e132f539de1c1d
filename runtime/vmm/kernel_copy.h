// ImageFile: a kernel or initrd file, open and mapped read-only for its
// headers. KernelCopy: the guest kernel, planned from its headers (every
// error in the file found at once) and then copied into a new VM's memory
// on a thread of its own, while the VMM wires the devices and reads the
// initrd (build_machine). Most of a copy is the host clearing the fresh
// huge pages it lands in, work that one core does a page at a time.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/joining_thread.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/memory/guest_memory.h"
#include "runtime/vmm/machine.h"

namespace husk::vmm {

// Mapped without populating: the loaders read the headers through the
// mapping and the contents from fd() (GuestMemory::read_file), so no page
// of the mapping is touched but the headers'.
class ImageFile {
 public:
  // Refuses what is not a regular file, and a file larger than `max_size`.
  [[nodiscard]] static Result<ImageFile> open(const std::string& path, uint64_t max_size);
  ImageFile(ImageFile&& o) noexcept;
  ImageFile& operator=(ImageFile&&) = delete;
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  ~ImageFile();
  [[nodiscard]] std::span<const uint8_t> bytes() const { return {data_, size_}; }
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  ImageFile() = default;
  UniqueFd fd_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class KernelCopy {
 public:
  // Opens and plans the kernel at `path`, then starts copying it into
  // `memory`, a new VM's (Destination::kZeroed), which must outlive the
  // copy. An error here (a missing file, a malformed or too-large kernel)
  // has written nothing.
  [[nodiscard]] static Result<std::unique_ptr<KernelCopy>> start(const std::string& path, const GuestMemory& memory);
  // Joins the copy if finish() did not.
  ~KernelCopy() = default;
  KernelCopy(const KernelCopy&) = delete;
  KernelCopy& operator=(const KernelCopy&) = delete;

  // Where the kernel goes, known before the copy ends (the initrd is
  // placed above it).
  [[nodiscard]] const x86_64::KernelImage& image() const { return plan_.image; }
  // Waits for the copy. Returns the kernel as placed, and stamps
  // `timeline`'s kernel_loaded with the moment the copy ended.
  [[nodiscard]] Result<x86_64::KernelImage> finish(BootTimeline& timeline);

 private:
  KernelCopy(std::string path, ImageFile file, x86_64::KernelPlan plan);
  std::string path_;
  ImageFile file_;
  x86_64::KernelPlan plan_;
  // Written by the copying thread, read after the join.
  Result<x86_64::KernelImage> copied_;
  PhaseStamp done_;
  // Last: joined before the members it uses go.
  JoiningThread thread_;
};

}  // namespace husk::vmm
