#include "runtime/kvm/vm.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <fmt/format.h>

#include "runtime/kvm/vcpu.h"

namespace husk::kvm {

int Vm::check_extension(int capability) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

Result<void> Vm::set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size,
                                        void* host) const {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    return fail_errno(fmt::format("KVM_SET_USER_MEMORY_REGION slot {} at {:#x}+{:#x}", slot,
                                  gpa, size));
  }
  return {};
}

Result<void> Vm::set_tss_addr(uint64_t addr) const {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    return fail_errno("KVM_SET_TSS_ADDR");
  }
  return {};
}

Result<void> Vm::set_identity_map_addr(uint64_t addr) const {
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
    return fail_errno("KVM_SET_IDENTITY_MAP_ADDR");
  }
  return {};
}

Result<void> Vm::create_irqchip() const {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return fail_errno("KVM_CREATE_IRQCHIP");
  return {};
}

Result<void> Vm::create_pit2() const {
  kvm_pit_config config{};
  // The PIT's speaker port is left to user space (it is unclaimed and ignored).
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) < 0) return fail_errno("KVM_CREATE_PIT2");
  return {};
}

Result<void> Vm::set_irq_line(uint32_t irq, bool level) const {
  kvm_irq_level line{};
  line.irq = irq;
  line.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &line) < 0) {
    return fail_errno(fmt::format("KVM_IRQ_LINE {}", irq));
  }
  return {};
}

namespace {
const char* irqchip_name(uint32_t chip_id) {
  switch (chip_id) {
    case KVM_IRQCHIP_PIC_MASTER: return "PIC master";
    case KVM_IRQCHIP_PIC_SLAVE: return "PIC slave";
    case KVM_IRQCHIP_IOAPIC: return "IOAPIC";
    default: return "unknown chip";
  }
}
}  // namespace

Result<kvm_irqchip> Vm::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) < 0) {
    return fail_errno(fmt::format("KVM_GET_IRQCHIP ({})", irqchip_name(chip_id)));
  }
  return chip;
}

Result<void> Vm::set_irqchip(const kvm_irqchip& chip) const {
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip) < 0) {
    return fail_errno(fmt::format("KVM_SET_IRQCHIP ({})", irqchip_name(chip.chip_id)));
  }
  return {};
}

Result<kvm_pit_state2> Vm::get_pit2() const {
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) return fail_errno("KVM_GET_PIT2");
  return pit;
}

Result<void> Vm::set_pit2(const kvm_pit_state2& pit) const {
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &pit) < 0) return fail_errno("KVM_SET_PIT2");
  return {};
}

Result<kvm_clock_data> Vm::get_clock() const {
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) return fail_errno("KVM_GET_CLOCK");
  return clock;
}

Result<void> Vm::set_clock(const kvm_clock_data& clock) const {
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &clock) < 0) return fail_errno("KVM_SET_CLOCK");
  return {};
}

Result<void> Vm::register_irqfd(int eventfd, uint32_t gsi) const {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return fail_errno(fmt::format("KVM_IRQFD gsi {}", gsi));
  }
  return {};
}

Result<void> Vm::register_ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                    std::optional<uint64_t> datamatch) const {
  kvm_ioeventfd io{};
  io.addr = addr;
  io.len = len;
  io.fd = eventfd;
  io.flags = pio ? KVM_IOEVENTFD_FLAG_PIO : 0;
  if (datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *datamatch;
  }
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    return fail_errno(fmt::format("KVM_IOEVENTFD at {:#x}", addr));
  }
  return {};
}

Result<Vcpu> Vm::create_vcpu(uint32_t id) const {
  UniqueFd vcpu_fd(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!vcpu_fd) return fail_errno(fmt::format("KVM_CREATE_VCPU {}", id));
  void* run = ::mmap(nullptr, vcpu_mmap_size_, PROT_READ | PROT_WRITE, MAP_SHARED,
                     vcpu_fd.get(), 0);
  if (run == MAP_FAILED) return fail_errno(fmt::format("mmap kvm_run of vCPU {}", id));
  return Vcpu(id, std::move(vcpu_fd), static_cast<kvm_run*>(run), vcpu_mmap_size_);
}

}  // namespace husk::kvm
