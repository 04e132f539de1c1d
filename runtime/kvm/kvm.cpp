#include "runtime/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "runtime/kvm/flex_array_ioctls.h"
#include "runtime/kvm/vm.h"

namespace husk::kvm {

namespace {
// KVM_GET_MSR_INDEX_LIST is asked for the count first; a kernel that says
// more than this is not believed (hosts list tens, or a few hundred).
constexpr uint32_t kMaxMsrIndices = 4096;
}  // namespace

Result<Kvm> Kvm::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    std::string hint;
    if (err == ENOENT) hint = " (is the kvm module loaded? see `husk doctor`)";
    if (err == EACCES) hint = " (add yourself to the kvm group or run as root)";
    return Unexpected(Error{err, fmt::format("open {}: {}{}", path, std::strerror(err), hint)});
  }
  const int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version < 0) return fail_errno(fmt::format("KVM_GET_API_VERSION on {}", path));
  if (version != KVM_API_VERSION) {
    return fail(fmt::format("{} speaks KVM API version {}, husk needs {}", path, version,
                            KVM_API_VERSION));
  }
  Kvm kvm(std::move(fd), version);
  const int xsave2 = kvm.check_extension(KVM_CAP_XSAVE2);
  kvm.xsave2_size_ = xsave2 > 0 ? static_cast<size_t>(xsave2) : 0;
  return kvm;
}

int Kvm::check_extension(int capability) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  // Header and entries in one buffer with the C layout (flex_array_ioctls.h).
  std::vector<uint8_t> buffer(sizeof(CpuidHeader) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  CpuidHeader header{kMaxCpuidEntries, 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  if (::ioctl(fd_.get(), kKvmGetSupportedCpuid, buffer.data()) < 0) {
    return fail_errno("KVM_GET_SUPPORTED_CPUID");
  }
  std::memcpy(&header, buffer.data(), sizeof(header));
  // Safe: the kernel wrote nent <= kMaxCpuidEntries entries after the
  // header; the min() guards against a kernel that says otherwise.
  std::vector<kvm_cpuid_entry2> entries(std::min(header.nent, kMaxCpuidEntries));
  std::memcpy(entries.data(), buffer.data() + sizeof(header),
              entries.size() * sizeof(kvm_cpuid_entry2));
  return entries;
}

Result<std::vector<uint32_t>> Kvm::msr_index_list() const {
  // First with room for none: KVM answers E2BIG and writes the count.
  MsrListHeader header{0};
  if (::ioctl(fd_.get(), kKvmGetMsrIndexList, &header) == 0) return std::vector<uint32_t>{};
  if (errno != E2BIG) return fail_errno("KVM_GET_MSR_INDEX_LIST");
  if (header.nmsrs > kMaxMsrIndices) {
    return fail(fmt::format("KVM_GET_MSR_INDEX_LIST: KVM lists {} MSRs, more than the {} husk takes",
                            header.nmsrs, kMaxMsrIndices));
  }
  const uint32_t count = header.nmsrs;
  std::vector<uint8_t> buffer(sizeof(MsrListHeader) + count * sizeof(uint32_t));
  std::memcpy(buffer.data(), &header, sizeof(header));
  if (::ioctl(fd_.get(), kKvmGetMsrIndexList, buffer.data()) < 0) {
    return fail_errno("KVM_GET_MSR_INDEX_LIST");
  }
  std::memcpy(&header, buffer.data(), sizeof(header));
  // Safe: the kernel wrote nmsrs <= count indices after the header (it
  // answers E2BIG otherwise); the min() guards against one that says more.
  std::vector<uint32_t> indices(std::min(header.nmsrs, count));
  std::memcpy(indices.data(), buffer.data() + sizeof(header), indices.size() * sizeof(uint32_t));
  return indices;
}

Result<size_t> Kvm::vcpu_mmap_size() const {
  const int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < 0) return fail_errno("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(size);
}

Result<Vm> Kvm::create_vm() const {
  int vm_fd = -1;
  // KVM_CREATE_VM can fail with EINTR while the host is busy; retry then.
  do {
    vm_fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (vm_fd < 0 && errno == EINTR);
  if (vm_fd < 0) return fail_errno("KVM_CREATE_VM");
  HUSK_TRY_ASSIGN(size_t mmap_size, vcpu_mmap_size());
  return Vm(UniqueFd(vm_fd), mmap_size);
}

}  // namespace husk::kvm
