// A vCPU thread under its seccomp filter on the machine's own /dev/kvm: a
// tiny real-mode guest writes to a port and halts, run by the real
// run_vcpu_loop in a forked child that has entered the vcpu class; then
// the fault report reads the registers (its three ioctls) and a call the
// vcpu list does not have ends the child with the report.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/kvm/kvm.h"
#include "runtime/kvm/vcpu.h"
#include "runtime/kvm/vm.h"
#include "runtime/memory/guest_memory.h"
#include "runtime/common/signals.h"
#include "runtime/vmm/vcpu_loop.h"
#include "seccomp/filter.h"
#include "seccomp/violation.h"
#include "tests/unit/seccomp/seccomp_child.h"

using namespace husk;

namespace {

constexpr uint64_t kCodeAddr = 0x1000;
constexpr uint16_t kPort = 0x3f8;

// Records the bytes written to its port.
class PortRecorder : public devices::BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0); }
  void write(uint64_t, std::span<const uint8_t> data) override { text.append(data.begin(), data.end()); }
  std::string text;
};

// Real mode at 0x1000: mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt.
struct RealModeGuest {
  static Result<RealModeGuest> create() {
    HUSK_TRY_ASSIGN(kvm::Kvm kvm, kvm::Kvm::open());
    HUSK_TRY_ASSIGN(kvm::Vm vm, kvm.create_vm());
    HUSK_TRY(vm.set_tss_addr(0xfffbd000));
    HUSK_TRY_ASSIGN(GuestMemory memory, GuestMemory::create({RegionSpec{0, 1 << 20}}));
    const GuestRegion& region = memory.regions().front();
    HUSK_TRY(vm.set_user_memory_region(0, region.gpa(), region.size(), region.host()));
    const uint8_t code[] = {0xba, 0xf8, 0x03, 0xb0, 'K', 0xee, 0xf4};
    HUSK_TRY(memory.write(kCodeAddr, code));
    HUSK_TRY_ASSIGN(kvm::Vcpu vcpu, vm.create_vcpu(0));
    HUSK_TRY_ASSIGN(kvm_sregs sregs, vcpu.get_sregs());
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    HUSK_TRY(vcpu.set_sregs(sregs));
    kvm_regs regs{};
    regs.rip = kCodeAddr;
    regs.rflags = 2;
    HUSK_TRY(vcpu.set_regs(regs));
    return RealModeGuest{std::move(kvm), std::move(vm), std::move(memory), std::move(vcpu)};
  }
  kvm::Kvm kvm;
  kvm::Vm vm;
  GuestMemory memory;
  kvm::Vcpu vcpu;
};

}  // namespace

TEST_CASE("a vCPU runs its guest under the vcpu filter; a call outside it ends the process", "[kvm][seccomp]") {
  REQUIRE(seccomp::prepare({seccomp::ThreadClass::kVcpu}));
  const auto child = test::in_seccomp_child([] {
    // KVM serves only the process that made the VM: all of it in the child.
    auto guest = RealModeGuest::create();
    auto stop = vmm::StopState::create();
    if (!guest || !stop) return 1;
    auto recorder = std::make_shared<PortRecorder>();
    devices::Bus pio("pio");
    devices::Bus mmio("mmio");
    if (!pio.insert(recorder, kPort, 1)) return 1;
    std::atomic<bool> exited{false};
    husk::install_signal_handlers();
    if (!test::enter_as(seccomp::ThreadClass::kVcpu, "husk-vcpu0")) return 2;
    vmm::run_vcpu_loop(vmm::VcpuContext{&guest->vcpu, &pio, &mmio, stop->get(), &exited});
    const auto exit = (*stop)->exit();
    if (!exit || exit->reason != vmm::ExitReason::kGuestShutdown) {
      const std::string why = (exit ? exit->detail : "no exit") + "\n";
      (void)!::write(STDERR_FILENO, why.data(), why.size());
      return 3;
    }
    if (recorder->text != "K" || !exited.load()) return 4;
    // The fault report's ioctls (registers, special registers, events).
    const std::string report = vmm::vcpu_fault_report(guest->vcpu, vmm::ExitHistory{});
    if (report.find("unavailable") != std::string::npos || report.find("rip 0x") == std::string::npos) return 5;
    // KVM_SET_REGS belongs to the build step, not to the vCPU thread.
    kvm_regs regs{};
    ::ioctl(guest->vcpu.fd(), KVM_SET_REGS, &regs);
    return 6;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == seccomp::kExitSeccompViolation);
  CHECK(child.err ==
        "husk: seccomp: the vcpu thread \"husk-vcpu0\" made a forbidden system call: ioctl (16); husk stops (exit "
        "200)\n");
}
