// ImageFile: a kernel or initrd file, open and mapped read-only for its
// headers. BootImages: the guest's kernel and initrd, checked and placed
// from their headers (every error in them found at once, before anything
// is written), then copied into a new VM's memory on a thread of their
// own, the loader (seccomp class "loader"), while the VMM registers the
// memory with KVM and wires the devices (build_machine). Most of a copy is
// the host clearing the fresh huge pages it lands in, work that one core
// does a page at a time.
//
// The guest needs its kernel at its first instruction, but its initrd only
// when it unpacks it, late in its boot. So the initrd may be held back:
// placed in whole 2 MiB pages of its own (x86_64::place_initrd_apart),
// left out of KVM's memory slots, and copied while the guest boots. Once
// it is in, its pages become a memory slot of their own. A vCPU that
// touches them earlier exits to the VMM as if they were MMIO; that exit
// waits for the copy (HeldBackRam) and then reads or writes the memory, so
// the guest sees its initrd whole whenever it looks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
#include "runtime/kvm/vm.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/stop_state.h"

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
  // the Machine: the copy may start before KVM is opened). With
  // `hold_initrd` the initrd is held back (above) when it fits apart. An
  // error here (a missing file, a malformed or too-large kernel or
  // initrd) has written nothing.
  [[nodiscard]] static Result<std::unique_ptr<BootImages>> start(const std::string& kernel_path,
                                                                 const std::string& initrd_path,
                                                                 const GuestMemory& memory, bool hold_initrd);
  // Stops a held-back initrd's copy that has not begun, and joins the
  // loaders.
  ~BootImages();
  BootImages(const BootImages&) = delete;
  BootImages& operator=(const BootImages&) = delete;

  // The initrd's pages, which KVM's memory slots must leave out until
  // attach() gives them; none when the initrd is not held back.
  [[nodiscard]] std::optional<GuestExtent> held_back() const { return held_; }

  // Waits for the kernel's copy, and for the initrd's unless it is held
  // back, and joins the loader. Stamps `timeline`'s kernel_loaded and initrd_loaded
  // with the moments the copies ended (initrd_loaded later, for one held
  // back: initrd_loaded()).
  [[nodiscard]] Result<PlacedImages> finish(BootTimeline& timeline);

  // A held-back initrd's loader, started with the VM's other threads
  // (Machine::run, before its control thread's filter: that one starts no
  // thread); it waits for copy_initrd_now(). Where no thread can be had,
  // the copy is done here. Nothing to do otherwise.
  void start_initrd_copy();
  // The guest starts: a held-back initrd's copy begins. Until then the
  // build has the cores: the guest needs its initrd late, its first
  // instruction now.
  void copy_initrd_now();

  // The VM, once it exists: the held-back pages become its memory slot
  // `slot` as soon as the initrd is in, on whichever thread comes last (the
  // loader's filter allows that one ioctl). A copy or slot that fails
  // after the guest started stops the VM through `stop`. `vm` and `stop`
  // must outlive this object.
  void attach(const kvm::Vm& vm, uint32_t slot, StopState& stop);

  // For a vCPU that touched the held-back pages before they were KVM's:
  // true once they are, false when the copy failed (the VM is stopping) or
  // `timeout` passed.
  [[nodiscard]] bool wait_until_in(std::chrono::milliseconds timeout);

  // When the initrd's copy ended; zero while it goes on.
  [[nodiscard]] PhaseStamp initrd_loaded() const;

 private:
  enum class Slot : uint8_t { kWaiting, kIn, kFailed };
  BootImages(std::string kernel_path, ImageFile kernel, x86_64::KernelPlan plan);
  // On the first loader: the kernel, then the initrd unless held back.
  void copy_kernel();
  // The initrd (when the kernel is in), then its slot if held back.
  void copy_initrd(bool kernel_in);
  // Gives KVM the held-back pages once the initrd is in and the VM
  // attached. Under mutex_.
  void give_slot_locked();

  std::string kernel_path_;
  std::optional<ImageFile> kernel_file_;  // until finish()
  x86_64::KernelPlan plan_;
  std::vector<x86_64::HostPiece> kernel_pieces_;
  std::string initrd_path_;
  std::optional<ImageFile> initrd_file_;
  uint64_t initrd_addr_ = 0;
  std::vector<x86_64::HostPiece> initrd_pieces_;
  std::optional<GuestExtent> held_;

  // The copies' progress, written by the loader thread.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool kernel_done_ = false;
  bool initrd_done_ = false;
  Result<void> kernel_outcome_{fail("not copied yet")};
  Result<void> initrd_outcome_{fail("not copied yet")};
  PhaseStamp kernel_stamp_;
  PhaseStamp initrd_stamp_;
  // attach()'s.
  const kvm::Vm* vm_ = nullptr;
  uint32_t slot_ = 0;
  uint8_t* held_host_ = nullptr;
  StopState* stop_ = nullptr;
  Slot slot_state_ = Slot::kWaiting;
  bool initrd_go_ = false;  // copy_initrd_now()
  bool cancelled_ = false;  // the destructor's

  // Last: joined (by the destructor) before the members they use go.
  JoiningThread kernel_thread_;
  JoiningThread initrd_thread_;
};

}  // namespace husk::vmm
