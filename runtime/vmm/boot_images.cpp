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

void BootImages::copy() {
  kernel_copy_.outcome = x86_64::read_pieces(kernel_file_.fd(), kernel_pieces_);
  kernel_copy_.done = stamp_now();
  if (kernel_copy_.outcome && initrd_file_) {
    initrd_copy_.outcome = x86_64::read_pieces(initrd_file_->fd(), initrd_pieces_);
  } else {
    initrd_copy_.outcome = {};
  }
  initrd_copy_.done = stamp_now();
}

Result<std::unique_ptr<BootImages>> BootImages::start(const std::string& kernel_path, const std::string& initrd_path,
                                                      const GuestMemory& memory) {
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
    // Above the kernel's whole footprint: no byte of it is the kernel
    // copy's.
    auto addr = x86_64::place_initrd(memory, initrd->bytes().size(), images->plan_.image);
    if (!addr) return wrap("initrd " + initrd_path, addr.error());
    images->initrd_path_ = initrd_path;
    images->initrd_file_.emplace(std::move(*initrd));
    images->initrd_addr_ = *addr;
  }
  // What the copy reads, the page sizes to suit it and the host memory it
  // lands in, decided here: the copying thread only reads, needs nothing
  // of `memory` but its mappings, and allocates nothing.
  HUSK_TRY_ASSIGN(const std::vector<x86_64::FilePiece> kernel_pieces,
                  x86_64::kernel_data(images->plan_, images->kernel_file_.fd()));
  if (images->plan_.fit_page_sizes) x86_64::fit_page_sizes(memory, kernel_pieces);
  HUSK_TRY_ASSIGN(images->kernel_pieces_, x86_64::resolve_pieces(memory, kernel_pieces));
  if (images->initrd_file_) {
    HUSK_TRY_ASSIGN(const std::vector<x86_64::FilePiece> initrd_pieces,
                    x86_64::file_data(images->initrd_file_->fd(), images->initrd_addr_, 0,
                                      images->initrd_file_->bytes().size()));
    x86_64::fit_page_sizes(memory, initrd_pieces);
    HUSK_TRY_ASSIGN(images->initrd_pieces_, x86_64::resolve_pieces(memory, initrd_pieces));
  }
  // The thread runs before the guest does and reads only the user's files
  // into memory that nothing else writes yet; it is joined before
  // build_machine returns, so before any seccomp filter goes in (the
  // threads that live on are started through spawn_thread).
  // One thread for both: beside the main thread, which mostly sleeps in
  // KVM's memory slot meanwhile, a second copying thread was measured to
  // gain little wall time for more CPU (each thread's start and exit).
  // If the system will not give a thread (a pids limit), the copy is done
  // here: that costs the overlap, not the boot.
  BootImages* self = images.get();
  auto thread = JoiningThread::start("guest image copy", [self] { self->copy(); });
  if (thread) {
    images->thread_ = std::move(*thread);
  } else {
    images->copy();
  }
  return images;
}

Result<PlacedImages> BootImages::finish(BootTimeline& timeline) {
  thread_.join();
  if (!kernel_copy_.outcome) return wrap("kernel " + kernel_path_, kernel_copy_.outcome.error());
  if (!initrd_copy_.outcome) return wrap("initrd " + initrd_path_, initrd_copy_.outcome.error());
  timeline.at(BootPhase::kKernelLoaded) = kernel_copy_.done;
  timeline.at(BootPhase::kInitrdLoaded) = initrd_copy_.done;
  PlacedImages placed;
  placed.kernel = plan_.image;
  if (initrd_file_) {
    placed.initrd_addr = initrd_addr_;
    placed.initrd_size = initrd_file_->bytes().size();
  }
  return placed;
}

}  // namespace husk::vmm
