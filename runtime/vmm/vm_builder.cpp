#include "runtime/vmm/vm_builder.h"

#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <filesystem>

#include <fmt/format.h>

#include "runtime/arch/x86_64/boot_cpu_state.h"
#include "runtime/arch/x86_64/boot_params.h"
#include "runtime/arch/x86_64/cpuid.h"
#include "runtime/arch/x86_64/gdt.h"
#include "runtime/arch/x86_64/kernel_loader.h"
#include "runtime/arch/x86_64/lapic.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/mptable.h"
#include "runtime/arch/x86_64/page_tables.h"
#include "runtime/common/file.h"
#include "runtime/devices/legacy/i8042.h"
#include "runtime/devices/virtio/block/block.h"
#include "runtime/devices/virtio/net/net.h"
#include "runtime/devices/virtio/rng/rng.h"
#include "runtime/devices/virtio/vsock/vsock.h"
#include "runtime/kvm/capabilities.h"
#include "runtime/kvm/cpuid_cache.h"
#include "runtime/kvm/vcpu_state.h"
#include "runtime/snapshot/machine_state.h"
#include "runtime/snapshot/snapshot_file.h"
#include "runtime/vmm/boot_images.h"
#include "runtime/vmm/held_back_ram.h"

namespace husk::vmm {

namespace x86 = husk::x86_64;

namespace {

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Result<void> setup_vm(const kvm::Vm& vm) {
  HUSK_TRY(vm.set_tss_addr(x86::kKvmTssAddr));
  HUSK_TRY(vm.set_identity_map_addr(x86::kKvmIdentityMapAddr));
  HUSK_TRY(vm.create_irqchip());
  HUSK_TRY(vm.create_pit2());
  return {};
}

// Every region a memory slot, but the pages `held` (a held-back initrd's,
// inside one region): the slots on both sides of them. Returns the next
// free slot number.
Result<uint32_t> register_memory(const kvm::Vm& vm, const GuestMemory& memory, std::optional<GuestExtent> held) {
  uint32_t slot = 0;
  for (const GuestRegion& region : memory.regions()) {
    if (!held || !region.contains(held->gpa, held->len)) {
      HUSK_TRY(vm.set_user_memory_region(slot++, region.gpa(), region.size(), region.host()));
      continue;
    }
    const uint64_t below = held->gpa - region.gpa();
    const uint64_t above = region.size() - below - held->len;
    if (below != 0) HUSK_TRY(vm.set_user_memory_region(slot++, region.gpa(), below, region.host()));
    if (above != 0) {
      HUSK_TRY(vm.set_user_memory_region(slot++, held->gpa + held->len, above, region.host() + below + held->len));
    }
  }
  return slot;
}

// Waits for the kernel's and the initrd's copies and writes every boot
// structure. Returns the kernel's 64-bit entry point.
Result<uint64_t> load_guest(const VmConfig& config, const std::string& cmdline, const GuestMemory& memory,
                            BootImages& images, BootTimeline& timeline) {
  HUSK_TRY_ASSIGN(const PlacedImages placed, images.finish(timeline));
  x86::BootConfig boot;
  boot.cmdline = cmdline;
  boot.initrd_addr = placed.initrd_addr;
  boot.initrd_size = placed.initrd_size;
  HUSK_TRY(x86::write_boot_params(memory, placed.kernel, boot));
  HUSK_TRY(x86::write_mptable(memory, config.vcpus));
  HUSK_TRY(x86::write_identity_page_tables(memory));
  HUSK_TRY(x86::write_boot_gdt(memory));
  return placed.kernel.entry;
}

Result<void> setup_vcpu(const kvm::Vcpu& vcpu, std::span<const kvm_cpuid_entry2> supported,
                        uint32_t count, uint64_t entry, bool tsc_deadline) {
  const auto cpuid = x86::normalize_cpuid(supported, vcpu.id(), count, tsc_deadline);
  HUSK_TRY(vcpu.set_cpuid(cpuid));
  HUSK_TRY(vcpu.set_msrs(x86::boot_msrs()));
  HUSK_TRY_ASSIGN(kvm_lapic_state lapic, vcpu.get_lapic());
  x86::set_boot_lint(lapic);
  HUSK_TRY(vcpu.set_lapic(lapic));
  // Application processors wait for INIT/SIPI from the boot CPU (KVM keeps
  // them in that state); only the boot CPU gets the 64-bit entry state.
  if (vcpu.id() != 0) return {};
  HUSK_TRY(vcpu.set_fpu(x86::boot_fpu()));
  HUSK_TRY_ASSIGN(kvm_sregs sregs, vcpu.get_sregs());
  x86::setup_long_mode_sregs(sregs);
  HUSK_TRY(vcpu.set_sregs(sregs));
  HUSK_TRY(vcpu.set_regs(x86::boot_regs(entry)));
  return {};
}

// The virtio devices the config asks for, in slot order.
Result<std::vector<std::shared_ptr<virtio::VirtioDevice>>> make_virtio_devices(const VmConfig& config) {
  std::vector<std::shared_ptr<virtio::VirtioDevice>> devices;
  for (size_t i = 0; i < config.disks.size(); ++i) {
    HUSK_TRY_ASSIGN(virtio::DiskImage disk, virtio::DiskImage::open(config.disks[i].path, config.disks[i].mode));
    devices.push_back(std::make_shared<virtio::Block>(std::move(disk), fmt::format("husk-disk{}", i)));
  }
  if (config.rng) devices.push_back(std::make_shared<virtio::Rng>());
  if (config.vsock) {
    HUSK_TRY_ASSIGN(auto vsock, virtio::Vsock::create(config.vsock->guest_cid, config.vsock->uds_path));
    devices.push_back(std::move(vsock));
  }
  if (config.net) {
    // A duplicate: the config's fd stays the caller's (a VMM process's
    // fixed number, or a test's).
    UniqueFd fd(::fcntl(config.net->link_fd, F_DUPFD_CLOEXEC, 3));
    if (!fd) return fail_errno("virtio-net: the backend's fd");
    auto link = config.net->link == NetConfig::Link::kTap ? net::make_tap_link(std::move(fd))
                                                          : net::make_stream_link(std::move(fd));
    if (!link) return wrap("virtio-net", link.error());
    HUSK_TRY_ASSIGN(auto device, virtio::Net::create(std::move(*link), config.net->device));
    devices.push_back(std::move(device));
  }
  return devices;
}

// The I/O thread class of a virtio device, and its short name.
std::pair<seccomp::ThreadClass, const char*> io_class(uint32_t device_id) {
  switch (device_id) {
    case VIRTIO_ID_BLOCK: return {seccomp::ThreadClass::kBlock, "blk"};
    case VIRTIO_ID_RNG: return {seccomp::ThreadClass::kRng, "rng"};
    case VIRTIO_ID_VSOCK: return {seccomp::ThreadClass::kVsock, "vsock"};
    case VIRTIO_ID_NET: return {seccomp::ThreadClass::kNet, "net"};
    default: break;
  }
  // A device without a class of its own (tests' devices) gets the
  // tightest one: an rng thread may read its queue and nothing else.
  return {seccomp::ThreadClass::kRng, "dev"};
}

}  // namespace

Result<void> attach_virtio(Machine& m, std::shared_ptr<virtio::VirtioDevice> device, uint32_t slot,
                           std::string& cmdline) {
  const uint64_t base = x86::kVirtioMmioBase + uint64_t{slot} * x86::kVirtioMmioWindow;
  const uint32_t irq = x86::kVirtioFirstIrq + slot;
  HUSK_TRY_ASSIGN(devices::EventFdInterrupt line, devices::EventFdInterrupt::create());
  auto interrupt = std::make_shared<devices::EventFdInterrupt>(std::move(line));
  HUSK_TRY(m.vm_.register_irqfd(interrupt->fd(), irq));
  m.interrupts_.push_back(interrupt);
  const size_t queues = device->queue_max_sizes().size();
  // The device's own I/O thread, of its kind's seccomp class.
  const auto [cls, kind] = io_class(device->device_id());
  HUSK_TRY_ASSIGN(EventLoop * loop, m.add_io_loop(cls, fmt::format("husk-{}{}", kind, slot)));
  auto transport = std::make_shared<virtio::MmioTransport>(std::move(device), m.memory_, interrupt, loop);
  HUSK_TRY(m.mmio_bus_.insert(transport, base, x86::kVirtioMmioWindow));
  // Each queue's notification is caught by KVM (datamatch on the queue
  // index) and lands on the device's I/O thread, not on a vCPU thread.
  for (uint16_t q = 0; q < queues; ++q) {
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) return fail_errno("eventfd for a virtio queue");
    HUSK_TRY(m.vm_.register_ioeventfd(efd.get(), base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, false, q));
    const int fd = efd.get();
    HUSK_TRY(loop->add(fd, EPOLLIN, [transport, q, fd](uint32_t) {
      uint64_t count = 0;
      [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof(count));
      transport->notify(q);
    }));
    m.queue_eventfds_.push_back(std::move(efd));
  }
  m.virtio_.push_back(std::move(transport));
  cmdline += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", base, irq);
  return {};
}

std::vector<RegionSpec> ram_regions(uint64_t memory_mib) {
  const uint64_t bytes = memory_mib << 20;
  if (bytes <= x86::kMmioGapStart) return {RegionSpec{0, bytes}};
  return {RegionSpec{0, x86::kMmioGapStart},
          RegionSpec{x86::kMmioGapEnd, bytes - x86::kMmioGapStart}};
}

Result<std::unique_ptr<Machine>> build_machine(const VmConfig& config, const BootTimeline& started) {
  BootTimeline timeline = started;
  const int64_t start = monotonic_ns();
  HUSK_TRY(validate(config));

  // Declared first, so destroyed last: after the image copy below is
  // joined, whether the guest memory is still `ram`'s or already the
  // machine's.
  std::unique_ptr<Machine> m;

  // 1. Guest memory: new and zero for a boot; for a restore the snapshot's
  // memory file, mapped copy-on-write, with its state checked whole first.
  std::optional<snapshot::StateFile> saved;
  std::optional<GuestMemory> ram;
  if (config.restore_from) {
    auto read = snapshot::read_state_file(config.restore_from->state_fd);
    if (!read) return wrap("the snapshot", read.error());
    saved = std::move(*read);
    auto mapped = GuestMemory::map_snapshot(ram_regions(config.memory_mib), config.restore_from->memory_fd);
    if (!mapped) return wrap("the snapshot", mapped.error());
    ram = std::move(*mapped);
  } else {
    // A VM that may be snapshotted keeps its RAM in a memfd (save()); the
    // rest get huge pages where the host allows them.
    const auto backing = config.save_to || !config.huge_pages ? GuestMemory::Backing::kMemfd
                                                               : GuestMemory::Backing::kHugeAnonymous;
    HUSK_TRY_ASSIGN(ram, GuestMemory::create(ram_regions(config.memory_mib), backing));
  }

  // 2. The kernel and the initrd, checked and placed from their headers
  // (a bad file fails here, before anything is written), then copied on
  // a thread of their own until step 6, while KVM makes the VM, takes the
  // memory and the devices are wired: the copy needs the memory's
  // mappings, not the VM. A restored guest has them in its memory.
  // `ram` moves into the machine below; its mappings, which the copy
  // writes, stay where they are.
  // The initrd is held back and copied while the guest boots, unless the
  // VM may be snapshotted (a snapshot takes the memory as it is).
  std::unique_ptr<BootImages> images;
  if (!saved) {
    HUSK_TRY_ASSIGN(images, BootImages::start(config.kernel_path, config.initrd_path, *ram, !config.save_to));
  }
  const std::optional<GuestExtent> held = images ? images->held_back() : std::nullopt;

  // 3. KVM and the VM.
  HUSK_TRY_ASSIGN(kvm::Kvm kvm, kvm::Kvm::open(config.kvm_path));
  HUSK_TRY(kvm::check_capabilities(kvm));
  // What KVM supports: the caller's, the cache's (this boot, this
  // /dev/kvm) or KVM's own answer, a hundred-odd CPUID instructions that
  // each exit to the hypervisor where the host is a VM.
  std::vector<kvm_cpuid_entry2> supported_cpuid;
  if (config.host_cpuid) {
    supported_cpuid = *config.host_cpuid;
  } else {
    HUSK_TRY_ASSIGN(supported_cpuid, kvm::host_cpuid(config.kvm_path, config.cpuid_cache_path, &kvm));
  }
  HUSK_TRY_ASSIGN(kvm::Vm vm, kvm.create_vm());
  HUSK_TRY(setup_vm(vm));
  timeline.mark(BootPhase::kKvmOpened);
  HUSK_TRY_ASSIGN(auto stop, StopState::create());
  m.reset(new Machine(std::move(kvm), std::move(vm), std::move(*ram), std::move(stop)));

  // 4. The memory registered with KVM: a slot update waits out a grace
  // period (synchronize_srcu), milliseconds in which the copies go on.
  HUSK_TRY_ASSIGN(const uint32_t held_slot, register_memory(m->vm_, m->memory_, held));
  if (held) {
    images->attach(m->vm_, held_slot, *m->stop_);
    HUSK_TRY(m->mmio_bus_.insert(std::make_shared<HeldBackRam>(*images, m->memory_, held->gpa), held->gpa, held->len));
  }
  timeline.mark(BootPhase::kMemoryReady);

  // 5. Devices. Every port, IRQ and irqfd of the machine is wired here.
  UniqueFd console_file;
  int console_fd = config.console_fd;
  if (!config.console_path.empty()) {
    console_file.reset(::open(config.console_path.c_str(),
                              O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!console_file) return fail_errno("open console file " + config.console_path);
    console_fd = console_file.get();
  }
  m->console_ = std::make_shared<devices::ConsoleSink>(console_fd, std::move(console_file));
  HUSK_TRY_ASSIGN(devices::EventFdInterrupt com1_irq, devices::EventFdInterrupt::create());
  auto com1_line = std::make_shared<devices::EventFdInterrupt>(std::move(com1_irq));
  HUSK_TRY(m->vm_.register_irqfd(com1_line->fd(), devices::Serial::kCom1Irq));
  m->interrupts_.push_back(com1_line);
  m->serial_ = std::make_shared<devices::Serial>(com1_line, m->console_);
  HUSK_TRY(m->pio_bus_.insert(m->serial_, devices::Serial::kCom1Base, devices::Serial::kPortCount));
  StopState* stop_state = m->stop_.get();
  auto i8042 = std::make_shared<devices::I8042>([stop_state] {
    stop_state->request(VmExit{ExitReason::kGuestReset, "reset through the i8042 (0xFE)", -1});
  });
  HUSK_TRY(m->pio_bus_.insert(i8042, devices::I8042::kDataPort, devices::I8042::kPortSpan));
  m->console_input_fd_ = config.console_input_fd;
  // Device entries must go before a " -- ": what follows it is init's.
  auto [cmdline, init_args] = split_init_args(config.cmdline);
  HUSK_TRY_ASSIGN(auto virtio_devices, make_virtio_devices(config));
  for (uint32_t slot = 0; slot < virtio_devices.size(); ++slot) {
    if (auto net = std::dynamic_pointer_cast<virtio::Net>(virtio_devices[slot])) m->net_ = net;
    HUSK_TRY(attach_virtio(*m, virtio_devices[slot], slot, cmdline));
  }
  if (!init_args.empty()) cmdline += (cmdline.empty() ? "" : " ") + init_args;
  timeline.mark(BootPhase::kDevicesReady);

  // 6. The copies joined and the boot structures written (the command
  // line now names every virtio device).
  uint64_t kernel_entry = 0;
  if (!saved) {
    HUSK_TRY_ASSIGN(kernel_entry, load_guest(config, cmdline, m->memory_, *images, timeline));
  }

  // 7. vCPUs.
  // KVM emulates the TSC-deadline timer in its in-kernel LAPIC but never
  // lists it in KVM_GET_SUPPORTED_CPUID; the capability says whether it can.
  const bool tsc_deadline = m->kvm_.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  m->vcpu_exited_ = std::make_unique<std::atomic<bool>[]>(config.vcpus);
  m->vcpu_dump_requested_ = std::make_unique<std::atomic<bool>[]>(config.vcpus);
  for (uint32_t id = 0; id < config.vcpus; ++id) {
    HUSK_TRY_ASSIGN(kvm::Vcpu vcpu, m->vm_.create_vcpu(id));
    if (saved) {
      HUSK_TRY(vcpu.set_cpuid(x86::normalize_cpuid(supported_cpuid, id, config.vcpus, tsc_deadline)));
    } else {
      HUSK_TRY(setup_vcpu(vcpu, supported_cpuid, config.vcpus, kernel_entry, tsc_deadline));
    }
    m->vcpus_.push_back(std::move(vcpu));
  }

  // 8. Snapshots: a restored machine takes its saved state; one that may
  // be saved learns which MSRs to save.
  m->pause_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!m->pause_fd_) return fail_errno("eventfd for pausing the VM");
  if (saved) {
    if (auto restored = restore_machine(*m, saved->state); !restored) return wrap("the snapshot", restored.error());
  }
  if (config.save_to) {
    HUSK_TRY_ASSIGN(m->msr_indices_, kvm::saved_msr_indices(m->kvm_, m->vcpus_[0]));
    m->save_to_ = config.save_to;
    m->paused_vcpus_.resize(m->vcpus_.size());
    m->snapshot_description_ = config.snapshot_description;
  }
  timeline.mark(BootPhase::kVcpusReady);
  // A held-back initrd's copy goes on (its file stays open until the VM
  // ends); the machine joins it first of all.
  if (held) m->images_ = std::move(images);
  timeline.build_start_ns = start;
  timeline.build_end_ns = timeline.at(BootPhase::kVcpusReady).ns;
  m->timeline_ = timeline;
  return m;
}

}  // namespace husk::vmm
