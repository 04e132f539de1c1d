// The harness of the hostile-guest tests (tests/kvm/hostile_*_test.cpp):
// boots a GuestProgram (tests/support/virtio_mmio_guest.h) in-process on a
// Machine with every virtio device husk has, lets it attack them, and
// measures what the host did meanwhile and afterwards.
//
// The machine: virtio-blk on a 1 MiB copy-on-write image in slot 0,
// virtio-rng in slot 1, virtio-vsock in slot 2 (slot n: MMIO window at
// 0xd0000000 + n * 4 KiB, IRQ 5 + n, as the VM builder wires them). A host
// listener for guest connections to vsock port kVsockListenPort can be
// asked for; it never accepts.
//
// One run happens in a child process, so a host crash or hang shows up as
// a failed check with the phase it happened in, not as a dead test binary.
// The child notes its fds, threads and RSS; builds the machine with
// $TMPDIR pointing at a private folder; runs it on a thread until the guest
// prints "DONE" (it then halts with interrupts off), sampling fds and RSS;
// measures its own and each VM thread's CPU time over an idle window; stops
// the VM; destroys it; counts fds, threads and what is left in the private
// folder; and sends every figure to the parent as it goes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/vmm/exit_reason.h"
#include "tests/support/virtio_mmio_guest.h"

namespace husk::test {

inline constexpr uint32_t kBlkSlot = 0;
inline constexpr uint32_t kRngSlot = 1;
inline constexpr uint32_t kVsockSlot = 2;
inline constexpr uint64_t kDiskBytes = 1 << 20;  // 2048 sectors
inline constexpr uint64_t kGuestCid = 3;
inline constexpr uint32_t kVsockListenPort = 5000;
inline constexpr uint64_t kGuestMemoryMib = 128;

struct HostileOptions {
  double window_seconds = 1.0;    // idle measurement after the guest's DONE
  double timeout_seconds = 30.0;  // for the guest to reach DONE (and again for the rest)
  bool vsock_listener = false;    // a host socket at <vsock uds>_<kVsockListenPort>
};

struct ThreadCpu {
  int tid = 0;
  std::string role;  // "vcpu", "event-loop", "control" (from its current syscall)
  double cpu_seconds = 0;
  // Share of the window's samples (every 10 ms) that found the thread
  // running or runnable: about 1 for a spinning thread however loaded the
  // machine is, about 0 for one that sleeps.
  double runnable_share = 0;
};

struct HostileRun {
  // Empty when the run went through; else what went wrong on the host
  // side ("killed by SIGSEGV after phase 'stopped'", "hung ...") or in
  // setting the run up.
  std::string host_failure;
  std::string phase;  // the last phase the child reached
  std::string console;
  std::map<std::string, uint64_t> values;  // the guest's "label=hex" lines
  bool done = false;                       // the guest printed DONE in time
  bool vm_stopped_early = false;           // the VM stopped before the host stopped it
  vmm::VmExit exit;

  double attack_seconds = 0;      // run() start to DONE seen
  double attack_cpu_seconds = 0;  // process CPU meanwhile
  double window_seconds = 0;
  double window_cpu_seconds = 0;  // process CPU over the idle window
  std::vector<ThreadCpu> window_threads;  // the VM's threads over the window

  int64_t rss_before_kib = 0;  // before the machine was built
  int64_t rss_done_kib = 0;    // when the guest printed DONE
  int64_t rss_end_kib = 0;     // at the end of the window
  int fds_before = 0;
  int fds_peak = 0;  // the most seen while the guest ran (sampled every 5 ms)
  int64_t rss_peak_kib = 0;  // likewise
  int fds_after = 0;
  int threads_before = 0;
  int threads_after = 0;
  std::vector<std::string> leftovers;  // what the run left in its $TMPDIR

  // The value the guest reported under `label` (fails the test if absent).
  [[nodiscard]] uint64_t value(const std::string& label) const;
  [[nodiscard]] bool has(const std::string& label) const { return values.count(label) != 0; }
  [[nodiscard]] double window_cpu_share() const {
    return window_seconds > 0 ? window_cpu_seconds / window_seconds : 0;
  }
  // One line of figures for logs and the test report.
  [[nodiscard]] std::string summary() const;
};

[[nodiscard]] HostileRun run_hostile_guest(const GuestProgram& program, const HostileOptions& options = {});

// The host held: it did not crash or hang, the guest finished, no thread
// spun in the idle window (process CPU under half the wall time, no VM
// thread runnable in more than a fifth of the samples), RSS grew by at most
// `rss_limit_kib` over the run and not at all to speak of while idle, and
// every fd, thread and temporary file is gone afterwards.
void check_host_held(const HostileRun& run, int64_t rss_limit_kib = 32 * 1024);

}  // namespace husk::test
