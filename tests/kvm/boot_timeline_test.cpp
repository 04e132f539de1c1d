// The host side of the boot timeline (runtime/vmm/machine.h BootPhase) on
// the machine's own /dev/kvm: `husk boot --timeline-json` writes every
// phase it goes through, in the order it goes through them, with the
// process's CPU time at each; a VMM process sends its phases (from its
// fork, through its filters) over its channel.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "runtime/vmm/vmm_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::run_process;
using husk::test::TempDir;
using namespace husk;

namespace {
const std::string kHusk = HUSK_BIN;

// `husk boot`'s main thread's phases, in the order it goes through them
// (no jail, and its filters are compiled as its threads start). The
// kernel and the initrd are copied on a thread of their own from the
// memory's mapping (after args_parsed, before KVM is opened) until
// vcpus_ready: their stamps fall anywhere between.
const std::vector<std::string> kBootOrder{"process_start",   "args_parsed",       "kvm_opened",
                                          "memory_ready",    "devices_ready",     "vcpus_ready",
                                          "threads_started", "seccomp_installed", "first_kvm_run"};
// The kernel is copied on a thread of its own between args_parsed and
// vcpus_ready. The initrd, held back, is copied once the guest starts
// (after the last filter): a guest that resets at its first instruction,
// as this one, may end before that copy does, and then the timeline has
// no initrd_loaded (tests/kvm/held_back_initrd_test.cpp has a guest that
// waits for it).
}  // namespace

TEST_CASE("husk boot writes every host phase of its start in increasing order, seccomp enforced", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("t.elf", make_tiny_elf(Asm().print("t").reset().bytes));
  // Any bytes make an initrd for a guest that never reads it.
  const std::string initrd = dir.write("initrd", std::vector<uint8_t>(3 * 4096 + 100, 0x69));
  const std::string json = dir.file("timeline.json");
  auto r = run_process({kHusk, "boot", "--kernel", kernel, "--initrd", initrd, "--no-input", "--timeline-json", json,
                        "--seccomp=enforce"},
                       60);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "t");
  std::ifstream in(json);
  const nlohmann::json t = nlohmann::json::parse(in);
  REQUIRE(t.contains("phases_ms"));
  REQUIRE(t.contains("cpu_ms"));
  const auto& phases = t["phases_ms"];
  const auto& cpu = t["cpu_ms"];
  double last_ms = -1;
  double last_cpu = -1;
  for (const std::string& name : kBootOrder) {
    INFO(name);
    REQUIRE(phases.contains(name));
    REQUIRE(cpu.contains(name));
    CHECK(phases[name].get<double>() >= last_ms);
    CHECK(cpu[name].get<double>() >= last_cpu);
    last_ms = phases[name].get<double>();
    last_cpu = cpu[name].get<double>();
  }
  const bool initrd_in = phases.contains("initrd_loaded");
  CHECK(phases.size() == kBootOrder.size() + (initrd_in ? 2 : 1));
  REQUIRE(phases.contains("kernel_loaded"));
  CHECK(phases["kernel_loaded"].get<double>() >= phases["args_parsed"].get<double>());
  CHECK(phases["kernel_loaded"].get<double>() <= phases["vcpus_ready"].get<double>());
  CHECK(cpu["kernel_loaded"].get<double>() >= cpu["args_parsed"].get<double>());
  CHECK(cpu["kernel_loaded"].get<double>() <= cpu["vcpus_ready"].get<double>());
  if (initrd_in) {
    CHECK(phases["initrd_loaded"].get<double>() >= phases["seccomp_installed"].get<double>());
    CHECK(cpu["initrd_loaded"].get<double>() >= cpu["seccomp_installed"].get<double>());
  }
  CHECK(phases["process_start"].get<double>() == 0.0);
  // A start takes time and CPU, but not seconds of it.
  CHECK(last_ms > 0);
  CHECK(last_ms < 10'000);
  CHECK(cpu["process_start"].get<double>() > 0);  // exec and the dynamic linker
  CHECK(cpu["first_kvm_run"].get<double>() == t["first_kvm_run_cpu_ms"].get<double>());
  CHECK_FALSE(phases.contains("jail_entered"));
  // The existing keys stay.
  CHECK(t.contains("build_ms"));
  CHECK(t.contains("first_kvm_run_monotonic_ns"));
  CHECK(t["process_start_monotonic_ns"].get<int64_t>() < t["first_kvm_run_monotonic_ns"].get<int64_t>());
}

TEST_CASE("a VMM process sends its phases from its fork to its first KVM_RUN", "[kvm]") {
  TempDir dir;
  vmm::VmConfig config;
  config.kernel_path = dir.write("reset.elf", make_tiny_elf(Asm().print("x").reset().bytes));
  config.console_path = dir.file("console");
  auto vmm = vmm::VmmProcess::start(config, {});
  REQUIRE(vmm);
  // Built: the build's phases are there already.
  const vmm::BootTimeline built = (*vmm)->timeline();
  CHECK(built.at(vmm::BootPhase::kVcpusReady).ns > 0);
  auto exit = (*vmm)->wait();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kGuestReset);
  const vmm::BootTimeline t = (*vmm)->timeline();
  const std::vector<vmm::BootPhase> order{
      vmm::BootPhase::kProcessStart,   vmm::BootPhase::kKvmOpened,      vmm::BootPhase::kMemoryReady,
      vmm::BootPhase::kDevicesReady,   vmm::BootPhase::kVcpusReady,     vmm::BootPhase::kFiltersCompiled,
      vmm::BootPhase::kThreadsStarted, vmm::BootPhase::kSeccompInstalled};
  int64_t last = 0;
  for (vmm::BootPhase p : order) {
    INFO(vmm::boot_phase_name(p));
    CHECK(t.at(p).ns > 0);
    CHECK(t.at(p).ns >= last);
    last = t.at(p).ns;
  }
  CHECK(t.first_run_ns >= last);
  // Copied beside KVM's VM, its memory slot and the devices, joined
  // before the vCPUs.
  for (vmm::BootPhase p : {vmm::BootPhase::kKernelLoaded, vmm::BootPhase::kInitrdLoaded}) {
    INFO(vmm::boot_phase_name(p));
    CHECK(t.at(p).ns >= t.at(vmm::BootPhase::kProcessStart).ns);
    CHECK(t.at(p).ns <= t.at(vmm::BootPhase::kVcpusReady).ns);
  }
  // Its CPU clock starts at its fork: the fork's stamp has none of it.
  CHECK(t.at(vmm::BootPhase::kProcessStart).cpu_ns == 0);
  CHECK(t.at(vmm::BootPhase::kSeccompInstalled).cpu_ns > 0);
  CHECK(t.at(vmm::BootPhase::kJailEntered).ns == 0);  // not jailed
  CHECK(t.at(vmm::BootPhase::kArgsParsed).ns == 0);
}
