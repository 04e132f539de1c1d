// ImageFile: a kernel or initrd file, open and mapped read-only for its
// headers. BootImages: the guest's kernel and initrd, checked and placed
// from their headers (every error in them found at once, before anything
// is written), then copied into a new VM's memory on a thread of their
// own while the VMM registers the memory with KVM and wires the devices
// (build_machine). Most of a copy is the host clearing the fresh huge pages
// it lands in, work that one core does a page at a time.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/arch/x86_64/kernel_writer.h"
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

// Where the copies put the kernel and the initrd (size 0: none).
struct PlacedImages {
  x86_64::KernelImage kernel;
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;
};

class BootImages {
 public:
  // Opens, checks and places the kernel at `kernel_path` and the initrd at
  // `initrd_path` (none when empty), then starts copying them into
  // `memory`, a new VM's (Destination::kZeroed), whose mappings must
  // outlive the copies (the GuestMemory object may move meanwhile, into
  // the Machine: the copy may start before KVM is opened). An error here
  // (a missing file, a malformed or too-large kernel or initrd) has
  // written nothing.
  [[nodiscard]] static Result<std::unique_ptr<BootImages>> start(const std::string& kernel_path,
                                                                 const std::string& initrd_path,
                                                                 const GuestMemory& memory);
  ~BootImages() = default;  // joins the copy (its thread is the last member)
  BootImages(const BootImages&) = delete;
  BootImages& operator=(const BootImages&) = delete;

  // Waits for the copy. Stamps `timeline`'s kernel_loaded and
  // initrd_loaded with the moments each ended.
  [[nodiscard]] Result<PlacedImages> finish(BootTimeline& timeline);

 private:
  // One file's copy: its outcome and end, written by the copying thread
  // and read after the join.
  struct Copy {
    Result<void> outcome{fail("not copied yet")};
    PhaseStamp done;
  };
  BootImages(std::string kernel_path, ImageFile kernel, x86_64::KernelPlan plan);
  // The kernel, then the initrd: on the copying thread.
  void copy();

  std::string kernel_path_;
  ImageFile kernel_file_;
  x86_64::KernelPlan plan_;
  std::vector<x86_64::HostPiece> kernel_pieces_;
  std::string initrd_path_;
  std::optional<ImageFile> initrd_file_;
  uint64_t initrd_addr_ = 0;
  std::vector<x86_64::HostPiece> initrd_pieces_;
  Copy kernel_copy_;
  Copy initrd_copy_;
  // Last: joined before the members it uses go.
  JoiningThread thread_;
};

}  // namespace husk::vmm
