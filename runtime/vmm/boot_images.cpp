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

// The initrd's data (not its holes) into new memory at `addr`, with page
// sizes to suit (GuestMemory::fit_page_sizes).
Result<void> copy_initrd(const GuestMemory& memory, const ImageFile& file, uint64_t addr) {
  HUSK_TRY_ASSIGN(const std::vector<GuestExtent> writes,
                  GuestMemory::data_extents(addr, file.fd(), 0, file.bytes().size()));
  memory.fit_page_sizes(writes);
  return memory.read_file(addr, file.fd(), 0, file.bytes().size(), Destination::kZeroed);
}

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

template <typename F>
void BootImages::run(Copy& copy, const char* what, F work) {
  auto body = [&copy, work = std::move(work)] {
    copy.outcome = work();
    copy.done = stamp_now();
  };
  auto thread = JoiningThread::start(what, body);
  if (thread) {
    copy.thread = std::move(*thread);
  } else {
    body();
  }
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
  // The threads run before the guest does and read only the user's files
  // into memory that nothing else writes yet; they are joined before
  // build_machine returns, so before any seccomp filter goes in (the
  // threads that live on are started through spawn_thread).
  BootImages* self = images.get();
  const GuestMemory* into = &memory;
  images->run(images->kernel_copy_, "kernel copy", [self, into]() -> Result<void> {
    HUSK_TRY(x86_64::write_kernel(*into, self->plan_, self->kernel_file_.bytes(), self->kernel_file_.fd(),
                                  Destination::kZeroed));
    return {};
  });
  if (images->initrd_file_) {
    images->run(images->initrd_copy_, "initrd copy",
                [self, into] { return copy_initrd(*into, *self->initrd_file_, self->initrd_addr_); });
  } else {
    images->initrd_copy_.outcome = {};
    images->initrd_copy_.done = stamp_now();
  }
  return images;
}

Result<PlacedImages> BootImages::finish(BootTimeline& timeline) {
  kernel_copy_.thread.join();
  initrd_copy_.thread.join();
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
