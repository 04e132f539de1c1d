#include "runtime/vmm/boot_images.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/arch/x86_64/boot_params.h"
#include "runtime/arch/x86_64/kernel_loader.h"
#include "runtime/arch/x86_64/kernel_writer.h"
#include "runtime/arch/x86_64/units.h"
#include "runtime/common/thread.h"

namespace husk::vmm {

namespace {

// A kernel image larger than this is not a kernel.
constexpr uint64_t kMaxKernelFile = 512ull << 20;

}  // namespace

Result<ImageFile> ImageFile::open(const std::string& path, uint64_t max_size) {
  ImageFile f;
  f.fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd_) return fail_errno("open " + path);
  struct stat st{};
  if (::fstat(f.fd_.get(), &st) < 0) return fail_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return fail(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_size) {
    return fail(fmt::format("{} is {} MiB, more than the {} MiB allowed", path, st.st_size >> 20, max_size >> 20));
  }
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ == 0) return f;
  void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, f.fd_.get(), 0);
  if (p == MAP_FAILED) return fail_errno("mmap " + path);
  f.data_ = static_cast<const uint8_t*>(p);
  return f;
}

ImageFile::ImageFile(ImageFile&& o) noexcept
    : fd_(std::move(o.fd_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

ImageFile::~ImageFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

BootImages::BootImages(std::string kernel_path, ImageFile kernel, x86_64::KernelPlan plan)
    : kernel_path_(std::move(kernel_path)), kernel_file_(std::move(kernel)), plan_(std::move(plan)) {}

void BootImages::copy_kernel() {
  Result<void> kernel = x86_64::read_pieces(kernel_file_->fd(), kernel_pieces_);
  const bool kernel_in = kernel.has_value();
  {
    std::lock_guard lock(mutex_);
    kernel_outcome_ = std::move(kernel);
    kernel_stamp_ = stamp_now();
    kernel_done_ = true;
  }
  changed_.notify_all();
  if (!held_) copy_initrd(kernel_in);
}

void BootImages::copy_initrd(bool kernel_in) {
  Result<void> initrd{};
  if (kernel_in && initrd_file_) initrd = x86_64::read_pieces(initrd_file_->fd(), initrd_pieces_);
  {
    std::lock_guard lock(mutex_);
    initrd_outcome_ = std::move(initrd);
    initrd_stamp_ = stamp_now();
    initrd_done_ = true;
    give_slot_locked();
  }
  changed_.notify_all();
}

void BootImages::start_initrd_copy() {
  if (!held_ || initrd_thread_.joinable()) return;
  BootImages* self = this;
  auto thread = spawn_thread(seccomp::ThreadClass::kLoader, "husk-loader", [self] {
    {
      std::unique_lock lock(self->mutex_);
      self->changed_.wait(lock, [self] { return self->initrd_go_ || self->cancelled_; });
      if (self->cancelled_) return;
    }
    self->copy_initrd(true);
  });
  if (thread) {
    initrd_thread_ = std::move(*thread);
  } else {
    copy_initrd(true);  // no thread to be had: here, before the guest starts
  }
}

BootImages::~BootImages() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  changed_.notify_all();
  initrd_thread_.join();
  kernel_thread_.join();
}

void BootImages::copy_initrd_now() {
  {
    std::lock_guard lock(mutex_);
    initrd_go_ = true;
  }
  changed_.notify_all();
}

void BootImages::give_slot_locked() {
  if (!held_ || slot_state_ != Slot::kWaiting || !initrd_done_ || vm_ == nullptr) return;
  Result<void> given = initrd_outcome_;
  if (given) given = vm_->set_user_memory_region(slot_, held_->gpa, held_->len, held_host_);
  if (given) {
    slot_state_ = Slot::kIn;
    return;
  }
  slot_state_ = Slot::kFailed;
  stop_->request(VmExit{ExitReason::kVcpuError, "initrd " + initrd_path_ + ": " + given.error().message});
}

Result<std::unique_ptr<BootImages>> BootImages::start(const std::string& kernel_path, const std::string& initrd_path,
                                                      const GuestMemory& memory, bool hold_initrd) {
  HUSK_TRY_ASSIGN(ImageFile kernel, ImageFile::open(kernel_path, kMaxKernelFile));
  auto plan = x86_64::plan_kernel(memory, kernel.bytes());
  if (!plan) return wrap("kernel " + kernel_path, plan.error());
  std::unique_ptr<BootImages> images(new BootImages(kernel_path, std::move(kernel), std::move(*plan)));
  if (!initrd_path.empty()) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(initrd_path, ec);
    if (!ec && size > memory.total_size()) {
      return fail(fmt::format("initrd {} is {} MiB, more than the VM's {} MiB of memory", initrd_path, size >> 20,
                              memory.total_size() >> 20));
    }
    auto initrd = ImageFile::open(initrd_path, memory.total_size());
    if (!initrd) return Unexpected(initrd.error());
    const uint64_t initrd_size = initrd->bytes().size();
    // Held back in 2 MiB pages of its own where they fit; otherwise as a
    // bootloader places it. Either way above the kernel's whole
    // footprint: no byte of it is the kernel copy's.
    auto apart = hold_initrd ? x86_64::place_initrd_apart(memory, initrd_size, images->plan_.image)
                             : Result<uint64_t>(fail("not held back"));
    if (apart) {
      images->held_ = GuestExtent{*apart, x86_64::align_up(initrd_size, x86_64::kHugePageSize)};
    }
    auto addr = apart ? apart : x86_64::place_initrd(memory, initrd_size, images->plan_.image);
    if (!addr) return wrap("initrd " + initrd_path, addr.error());
    images->initrd_path_ = initrd_path;
    images->initrd_file_.emplace(std::move(*initrd));
    images->initrd_addr_ = *addr;
  }
  // What the copy reads, the page sizes to suit it and the host memory it
  // lands in, decided here: the copying thread only reads, needs nothing
  // of `memory` but its mappings, and allocates nothing.
  HUSK_TRY_ASSIGN(const std::vector<x86_64::FilePiece> kernel_pieces,
                  x86_64::kernel_data(images->plan_, images->kernel_file_->fd()));
  if (images->plan_.fit_page_sizes) x86_64::fit_page_sizes(memory, kernel_pieces);
  HUSK_TRY_ASSIGN(images->kernel_pieces_, x86_64::resolve_pieces(memory, kernel_pieces));
  if (images->initrd_file_) {
    HUSK_TRY_ASSIGN(const std::vector<x86_64::FilePiece> initrd_pieces,
                    x86_64::file_data(images->initrd_file_->fd(), images->initrd_addr_, 0,
                                      images->initrd_file_->bytes().size()));
    x86_64::fit_page_sizes(memory, initrd_pieces);
    HUSK_TRY_ASSIGN(images->initrd_pieces_, x86_64::resolve_pieces(memory, initrd_pieces));
  }
  if (images->held_) {
    HUSK_TRY_ASSIGN(const std::span<uint8_t> host, memory.slice(images->held_->gpa, images->held_->len));
    images->held_host_ = host.data();
  }
  // The loader reads only the user's files into memory that nothing else
  // writes yet, under a filter of its own (spawn_thread), and is joined in
  // finish(), before the jail's privileges drop (glibc's setresuid runs
  // in every thread). A held-back initrd gets a loader of its own when
  // the guest starts (start_initrd_copy). One thread for both files
  // otherwise: beside the main thread, which mostly sleeps in KVM's memory
  // slot meanwhile, a second copying thread was measured to gain little
  // wall time for more CPU (each thread's start and exit). If the system
  // will not give a thread (a pids limit), the copy is done here: that
  // costs the overlap, not the boot.
  BootImages* self = images.get();
  auto thread = spawn_thread(seccomp::ThreadClass::kLoader, "husk-loader", [self] { self->copy_kernel(); });
  if (thread) {
    images->kernel_thread_ = std::move(*thread);
  } else {
    images->copy_kernel();
  }
  return images;
}

Result<PlacedImages> BootImages::finish(BootTimeline& timeline) {
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return kernel_done_ && (held_ || initrd_done_); });
    if (!kernel_outcome_) return wrap("kernel " + kernel_path_, kernel_outcome_.error());
    if (initrd_done_ && !initrd_outcome_) return wrap("initrd " + initrd_path_, initrd_outcome_.error());
    timeline.at(BootPhase::kKernelLoaded) = kernel_stamp_;
    if (initrd_done_) timeline.at(BootPhase::kInitrdLoaded) = initrd_stamp_;
  }
  // The loader is done, and goes before the filters and the jail do; so
  // does the kernel's file.
  kernel_thread_.join();
  kernel_file_.reset();
  PlacedImages placed;
  placed.kernel = plan_.image;
  if (initrd_file_) {
    placed.initrd_addr = initrd_addr_;
    placed.initrd_size = initrd_file_->bytes().size();
  }
  return placed;
}

void BootImages::attach(const kvm::Vm& vm, uint32_t slot, StopState& stop) {
  {
    std::lock_guard lock(mutex_);
    vm_ = &vm;
    slot_ = slot;
    stop_ = &stop;
    give_slot_locked();
  }
  changed_.notify_all();
}

bool BootImages::wait_until_in(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [this] { return slot_state_ != Slot::kWaiting; });
  return slot_state_ == Slot::kIn;
}

PhaseStamp BootImages::initrd_loaded() const {
  std::lock_guard lock(mutex_);
  return initrd_done_ ? initrd_stamp_ : PhaseStamp{};
}

}  // namespace husk::vmm
