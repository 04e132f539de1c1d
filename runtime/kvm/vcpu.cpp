#include "runtime/kvm/vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "runtime/kvm/flex_array_ioctls.h"

namespace husk::kvm {

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : id_(other.id_),
      fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(other.run_size_) {}

Result<void> Vcpu::run() const {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) return fail_errno(fmt::format("KVM_RUN vCPU {}", id_));
  return {};
}

namespace {
template <typename T>
Result<T> get_state(int fd, unsigned long request, const char* name, uint32_t id) {
  T state{};
  if (::ioctl(fd, request, &state) < 0) return fail_errno(fmt::format("{} vCPU {}", name, id));
  return state;
}

template <typename T>
Result<void> set_state(int fd, unsigned long request, const T& state, const char* name,
                       uint32_t id) {
  if (::ioctl(fd, request, &state) < 0) return fail_errno(fmt::format("{} vCPU {}", name, id));
  return {};
}
}  // namespace

Result<kvm_mp_state> Vcpu::get_mp_state() const {
  return get_state<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE", id_);
}
Result<void> Vcpu::set_mp_state(const kvm_mp_state& mp_state) const {
  return set_state(fd_.get(), KVM_SET_MP_STATE, mp_state, "KVM_SET_MP_STATE", id_);
}
Result<kvm_regs> Vcpu::get_regs() const {
  return get_state<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS", id_);
}
Result<void> Vcpu::set_regs(const kvm_regs& regs) const {
  return set_state(fd_.get(), KVM_SET_REGS, regs, "KVM_SET_REGS", id_);
}
Result<kvm_sregs> Vcpu::get_sregs() const {
  return get_state<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS", id_);
}
Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) const {
  return set_state(fd_.get(), KVM_SET_SREGS, sregs, "KVM_SET_SREGS", id_);
}
Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) const {
  return set_state(fd_.get(), KVM_SET_FPU, fpu, "KVM_SET_FPU", id_);
}
Result<kvm_xcrs> Vcpu::get_xcrs() const {
  return get_state<kvm_xcrs>(fd_.get(), KVM_GET_XCRS, "KVM_GET_XCRS", id_);
}
Result<void> Vcpu::set_xcrs(const kvm_xcrs& xcrs) const {
  return set_state(fd_.get(), KVM_SET_XCRS, xcrs, "KVM_SET_XCRS", id_);
}
Result<kvm_debugregs> Vcpu::get_debugregs() const {
  return get_state<kvm_debugregs>(fd_.get(), KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", id_);
}
Result<void> Vcpu::set_debugregs(const kvm_debugregs& debugregs) const {
  return set_state(fd_.get(), KVM_SET_DEBUGREGS, debugregs, "KVM_SET_DEBUGREGS", id_);
}
Result<kvm_vcpu_events> Vcpu::get_vcpu_events() const {
  return get_state<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", id_);
}
Result<void> Vcpu::set_vcpu_events(const kvm_vcpu_events& events) const {
  return set_state(fd_.get(), KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS", id_);
}
Result<kvm_lapic_state> Vcpu::get_lapic() const {
  return get_state<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC", id_);
}
Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) const {
  return set_state(fd_.get(), KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC", id_);
}

namespace {
// Header + entries with the C layout (see flex_array_ioctls.h).
template <typename Header, typename Entry>
std::vector<uint8_t> flex_buffer(std::span<const Entry> entries) {
  std::vector<uint8_t> buffer(sizeof(Header) + entries.size_bytes());
  const Header header{static_cast<uint32_t>(entries.size()), 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  if (!entries.empty()) std::memcpy(buffer.data() + sizeof(header), entries.data(), entries.size_bytes());
  return buffer;
}
}  // namespace

Result<std::vector<uint8_t>> Vcpu::get_xsave(size_t xsave2_size) const {
  // The numbers of flex_array_ioctls.h: <linux/kvm.h>'s are wrong in C++.
  const bool xsave2 = xsave2_size > 0;
  std::vector<uint8_t> xsave(xsave2 ? std::max(xsave2_size, sizeof(XsaveRegion)) : sizeof(XsaveRegion));
  if (::ioctl(fd_.get(), xsave2 ? kKvmGetXsave2 : kKvmGetXsave, xsave.data()) < 0) {
    return fail_errno(fmt::format("{} vCPU {}", xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", id_));
  }
  return xsave;
}

Result<void> Vcpu::set_xsave(std::span<const uint8_t> xsave) const {
  // KVM reads at least a whole struct kvm_xsave: a shorter buffer would let
  // it read past the end of ours.
  if (xsave.size() < sizeof(XsaveRegion)) {
    return fail(fmt::format("KVM_SET_XSAVE vCPU {}: the XSAVE state is {} bytes, KVM reads {}", id_,
                            xsave.size(), sizeof(XsaveRegion)));
  }
  if (::ioctl(fd_.get(), kKvmSetXsave, xsave.data()) < 0) {
    return fail_errno(fmt::format("KVM_SET_XSAVE vCPU {}", id_));
  }
  return {};
}

Result<size_t> Vcpu::get_msrs(std::span<kvm_msr_entry> msrs) const {
  std::vector<uint8_t> buffer = flex_buffer<MsrsHeader>(std::span<const kvm_msr_entry>(msrs));
  const int read = ::ioctl(fd_.get(), kKvmGetMsrs, buffer.data());
  if (read < 0) return fail_errno(fmt::format("KVM_GET_MSRS vCPU {}", id_));
  // Safe: the kernel returns how many of the entries it filled in, at most
  // as many as it was given; the min() guards against one that says more.
  const size_t count = std::min(static_cast<size_t>(read), msrs.size());
  if (count > 0) std::memcpy(msrs.data(), buffer.data() + sizeof(MsrsHeader), count * sizeof(kvm_msr_entry));
  return count;
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> msrs) const {
  std::vector<uint8_t> buffer = flex_buffer<MsrsHeader>(msrs);
  const int set = ::ioctl(fd_.get(), kKvmSetMsrs, buffer.data());
  if (set < 0) return fail_errno(fmt::format("KVM_SET_MSRS vCPU {}", id_));
  if (static_cast<size_t>(set) < msrs.size()) {
    return fail(fmt::format("KVM_SET_MSRS vCPU {}: MSR {:#x} was refused", id_,
                            msrs[static_cast<size_t>(set)].index));
  }
  return {};
}

Result<void> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) const {
  std::vector<uint8_t> buffer = flex_buffer<CpuidHeader>(entries);
  if (::ioctl(fd_.get(), kKvmSetCpuid2, buffer.data()) < 0) {
    return fail_errno(fmt::format("KVM_SET_CPUID2 vCPU {}", id_));
  }
  return {};
}

}  // namespace husk::kvm
