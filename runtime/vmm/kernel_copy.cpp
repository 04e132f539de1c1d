#include "runtime/vmm/kernel_copy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include <fmt/format.h>

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

KernelCopy::KernelCopy(std::string path, ImageFile file, x86_64::KernelPlan plan)
    : path_(std::move(path)), file_(std::move(file)), plan_(std::move(plan)), copied_(fail("not copied yet")) {}

Result<std::unique_ptr<KernelCopy>> KernelCopy::start(const std::string& path, const GuestMemory& memory) {
  HUSK_TRY_ASSIGN(ImageFile file, ImageFile::open(path, kMaxKernelFile));
  auto plan = x86_64::plan_kernel(memory, file.bytes());
  if (!plan) return wrap("kernel " + path, plan.error());
  std::unique_ptr<KernelCopy> copy(new KernelCopy(path, std::move(file), std::move(*plan)));
  // The thread runs before the guest does and reads only the user's
  // kernel file into memory no one else writes yet; it is joined before
  // build_machine returns, so before any seccomp filter goes in (the
  // threads that live on are started through spawn_thread).
  KernelCopy* self = copy.get();
  const GuestMemory* into = &memory;
  auto body = [self, into] {
    self->copied_ = x86_64::write_kernel(*into, self->plan_, self->file_.bytes(), self->file_.fd(),
                                         Destination::kZeroed);
    self->done_ = stamp_now();
  };
  auto thread = JoiningThread::start("kernel copy", body);
  // A thread the system will not give (a pids limit) costs the overlap,
  // not the boot: the copy is done here instead.
  if (thread) {
    copy->thread_ = std::move(*thread);
  } else {
    body();
  }
  return copy;
}

Result<x86_64::KernelImage> KernelCopy::finish(BootTimeline& timeline) {
  thread_.join();
  if (!copied_) return wrap("kernel " + path_, copied_.error());
  timeline.at(BootPhase::kKernelLoaded) = done_;
  return *copied_;
}

}  // namespace husk::vmm
