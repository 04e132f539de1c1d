// Machine: a built VM ready to run, owning every resource of it (KVM handles,
// guest memory, devices, vCPUs) and, while it runs, its threads, each of its
// class (seccomp/thread_class.h): one per vCPU, one I/O thread per virtio
// device (its event loop: queue kicks, disk or socket fds), one for console
// input. The thread that calls run() is the VM's control thread. run()
// returns once every thread is joined.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <functional>
#include <string>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/devices/bus.h"
#include "runtime/devices/interrupt.h"
#include "runtime/devices/legacy/console_sink.h"
#include "runtime/devices/legacy/serial.h"
#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/kvm/kvm.h"
#include "runtime/kvm/vcpu.h"
#include "runtime/kvm/vcpu_state.h"
#include "runtime/kvm/vm.h"
#include "runtime/memory/guest_memory.h"
#include "runtime/common/event_loop.h"
#include "runtime/common/joining_thread.h"
#include "runtime/common/signals.h"
#include "runtime/vmm/exit_reason.h"
#include "runtime/vmm/pause_gate.h"
#include "runtime/vmm/stop_state.h"
#include "runtime/vmm/vm_config.h"
#include "seccomp/thread_class.h"

namespace husk::snapshot {
struct MachineState;
}

namespace husk::vmm {

class BootImages;

// The host side of a VM's start, phase by phase, in the order a VMM does
// them (issue 16: a timeline that explains every millisecond). A phase a
// VMM does not go through (the jail in `husk boot`, the kernel load of a
// restore) keeps its zero stamp and is left out of every report.
enum class BootPhase : uint8_t {
  kProcessStart,    // main()'s first line (`husk boot`), or husk's fork of the VMM process
  kArgsParsed,      // the command line parsed (`husk boot`)
  kKvmOpened,       // guest memory mapped and its copies started, /dev/kvm open, its
                    // capabilities checked, the VM created
  kMemoryReady,     // guest memory registered with KVM
  kDevicesReady,    // serial, i8042 and the virtio devices wired
  kKernelLoaded,    // the kernel's segments in guest memory
  kInitrdLoaded,    // the initrd in guest memory; both copied on a thread of their own
                    // from the memory's mapping on (BootImages): either may come before
                    // kvm_opened, memory_ready or devices_ready
  kVcpusReady,      // the copy joined, the boot structures written and every vCPU
                    // set up (the end of build_machine)
  kJailEntered,     // the VMM process dropped its privileges (a jailed VMM only)
  kFiltersCompiled, // every thread class's seccomp filter compiled (a VMM process)
  kThreadsStarted,  // every vCPU and device thread runs, each under its filter
  kSeccompInstalled,// the control thread under its filter: every thread confined
  kCount,
};
inline constexpr size_t kBootPhaseCount = static_cast<size_t>(BootPhase::kCount);

// "process_start", "args_parsed", ... (the keys of the timeline's JSON).
[[nodiscard]] const char* boot_phase_name(BootPhase p);

// One moment: CLOCK_MONOTONIC and this process's CPU time
// (CLOCK_PROCESS_CPUTIME_ID, from exec, or from fork in a VMM process).
struct PhaseStamp {
  int64_t ns = 0;
  int64_t cpu_ns = 0;
};
[[nodiscard]] PhaseStamp stamp_now();
// The stamp of this process's start: taken by the first call (main()'s
// first line calls it), the same ever after. A forked VMM process is
// given its fork's stamp instead (BootTimeline::phases).
[[nodiscard]] PhaseStamp process_start_stamp();

// Monotonic timestamps (ns) of the VM's life, for reports and benchmarks.
struct BootTimeline {
  int64_t build_start_ns = 0;
  int64_t build_end_ns = 0;
  int64_t first_run_ns = 0;      // vCPU 0 entering KVM_RUN the first time
  int64_t first_run_cpu_ns = 0;  // process CPU time at that moment
  int64_t stop_ns = 0;           // the stop request was seen
  std::array<PhaseStamp, kBootPhaseCount> phases{};

  [[nodiscard]] PhaseStamp& at(BootPhase p) { return phases[static_cast<size_t>(p)]; }
  [[nodiscard]] const PhaseStamp& at(BootPhase p) const { return phases[static_cast<size_t>(p)]; }
  void mark(BootPhase p) { at(p) = stamp_now(); }
};

class Machine {
 public:
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Runs the VM until it stops (guest reset or shutdown, a failure, or
  // SIGINT/SIGTERM to this process) and returns why. Call once. SIGQUIT
  // meanwhile logs every vCPU's state (registers, last exits) and the VM
  // runs on: a guest that hangs can be asked where it is.
  [[nodiscard]] Result<VmExit> run();

  // Asks a running VM to stop (from any thread); run() then returns `exit`
  // unless the guest stopped first.
  void request_stop(VmExit exit) { stop_->request(std::move(exit)); }
  // Logs every vCPU's state (registers, last exits) and runs on: SIGQUIT's
  // dump. From run()'s own thread (a watch() handler), while it runs.
  void request_dump();
  [[nodiscard]] bool stopped() const { return stop_->stopped(); }

  // Pauses the running VM (every vCPU and device thread parked), writes
  // its snapshot into the config's save_to files and lets it run on.
  // From run()'s own thread (a watch() handler). Returns a line saying
  // what was written. runtime/vmm/machine_snapshot.cpp.
  [[nodiscard]] Result<std::string> snapshot();

  // Buses, for tests that add their own devices before run().
  [[nodiscard]] devices::Bus& pio_bus() { return pio_bus_; }
  [[nodiscard]] devices::Bus& mmio_bus() { return mmio_bus_; }
  [[nodiscard]] const GuestMemory& memory() const { return memory_; }
  [[nodiscard]] BootTimeline timeline() const;
  // Stamps a phase that happens outside build_machine() and run() (a VMM
  // process's jail and filters), now.
  void mark_phase(BootPhase p) { timeline_.mark(p); }
  [[nodiscard]] const std::vector<std::shared_ptr<virtio::MmioTransport>>& virtio_transports() const {
    return virtio_;
  }
  [[nodiscard]] uint32_t vcpu_count() const { return static_cast<uint32_t>(vcpus_.size()); }
  // The network's counts and refusals so far; none without a network.
  [[nodiscard]] std::optional<net::NetReport> net_report() const;

  // The control thread also watches `fd` while the VM runs and calls
  // `on_readable` from run()'s thread when it is (a VMM process's channel to
  // its parent). Set before run().
  void watch(int fd, std::function<void()> on_readable) {
    watch_fd_ = fd;
    on_watch_ = std::move(on_readable);
  }

  // The filter of run()'s own thread, installed once every other thread has
  // started (a thread inherits its creator's filter: one installed first
  // would hold the vCPU and device threads too). Without one, run()'s
  // thread stays as it is (tests). See confine_control_thread().
  void set_control_filter(std::function<Result<void>()> enter) { control_filter_ = std::move(enter); }

  // One device I/O thread's loop: its class, its thread's name.
  struct IoLoop {
    seccomp::ThreadClass cls;
    std::string name;
    std::unique_ptr<EventLoop> loop;
  };
  // For tests that put their own fds on a device's thread.
  [[nodiscard]] EventLoop* io_loop(seccomp::ThreadClass cls) const;

 private:
  friend Result<std::unique_ptr<Machine>> build_machine(const VmConfig& config, const BootTimeline& started);
  friend Result<void> restore_machine(Machine& m, const snapshot::MachineState& state);
  friend Result<void> attach_virtio(Machine& m, std::shared_ptr<virtio::VirtioDevice> device,
                                    uint32_t slot, std::string& cmdline);
  Machine(kvm::Kvm kvm, kvm::Vm vm, GuestMemory memory, std::unique_ptr<StopState> stop);
  void stop_vcpus(std::vector<pthread_t>& threads);
  // Adds a loop for a device I/O thread; the pointer stays valid.
  Result<EventLoop*> add_io_loop(seccomp::ThreadClass cls, std::string name);
  // Starts every I/O thread (and the console input's); stops the VM on a failure.
  Result<std::vector<JoiningThread>> start_io_threads();
  // The control thread's wait: stop requests, signals, the watched fd.
  void control_loop(const StopSignals& signals);

  kvm::Kvm kvm_;
  kvm::Vm vm_;
  GuestMemory memory_;
  std::unique_ptr<StopState> stop_;
  std::vector<IoLoop> io_loops_;
  devices::Bus pio_bus_{"pio"};
  devices::Bus mmio_bus_{"mmio"};
  std::vector<kvm::Vcpu> vcpus_;
  std::vector<pthread_t> vcpu_threads_;  // while run() runs
  std::unique_ptr<std::atomic<bool>[]> vcpu_exited_;
  std::unique_ptr<std::atomic<bool>[]> vcpu_dump_requested_;
  std::shared_ptr<devices::ConsoleSink> console_;
  std::shared_ptr<devices::Serial> serial_;
  std::vector<std::shared_ptr<devices::EventFdInterrupt>> interrupts_;
  std::vector<std::shared_ptr<virtio::MmioTransport>> virtio_;
  std::shared_ptr<virtio::Net> net_;  // also in virtio_, behind its transport
  std::vector<UniqueFd> queue_eventfds_;
  int console_input_fd_ = -1;
  int watch_fd_ = -1;
  std::function<Result<void>()> control_filter_;
  std::function<void()> on_watch_;
  BootTimeline timeline_;
  // Snapshots: the gate every thread parks at, the eventfd that wakes the
  // I/O threads to it, the MSRs saved, where a snapshot goes.
  PauseGate pause_gate_;
  UniqueFd pause_fd_;
  std::vector<uint32_t> msr_indices_;
  // Each vCPU's state, saved by its own thread as it parked.
  struct PausedVcpu {
    std::optional<kvm::VcpuState> state;
    std::string error;
  };
  std::vector<PausedVcpu> paused_vcpus_;
  std::optional<SnapshotFds> save_to_;
  std::string snapshot_description_;
  std::atomic<int64_t> first_run_ns_{0};
  std::atomic<int64_t> first_run_cpu_ns_{0};
  // Opened by the control thread once it is under its own filter: no vCPU
  // runs guest code before every thread of the VM is confined.
  // (A mutex and condition variable: std::atomic::wait spins with
  // sched_yield, which the vCPU filter does not allow.)
  std::mutex release_mutex_;
  std::condition_variable release_cv_;
  bool vcpus_released_ = false;
  bool ran_ = false;
  // The guest images' copy, when it outlives the build (a held-back
  // initrd). Last: its thread, which writes memory_ and gives vm_ a slot,
  // is joined before anything else goes.
  std::unique_ptr<BootImages> images_;
};

}  // namespace husk::vmm
