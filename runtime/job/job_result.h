// JobResult: what running a Job produced, as plain data. The verdicts have
// isolate's meanings (docs/job-file.md); result_json.h writes the
// documented JSON form (docs/result.schema.json), report.h the human one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/net/net_filter.h"

namespace husk::job {

enum class Verdict { kOk, kRuntimeError, kSignaled, kTimeout, kMemoryLimit, kOutputLimit, kWrongAnswer, kInternal };

// "OK", "RE", "SG", "TO", "ML", "OL", "WA", "XX".
[[nodiscard]] const char* verdict_code(Verdict v);
[[nodiscard]] const char* verdict_meaning(Verdict v);

enum class RunKind { kStep, kProcess, kCase };

// One program run: a step, the process, or a case.
struct RunResult {
  std::string name;
  RunKind kind = RunKind::kStep;
  Verdict verdict = Verdict::kOk;
  std::string message;        // why, when not OK
  std::string limit;          // the agent's name of the limit that ended it ("wall-timeout")
  int exit_code = -1;         // -1 when killed by a signal or never started
  int signal = 0;
  double wall_ms = 0;
  double cpu_ms = 0;
  uint64_t peak_memory_bytes = 0;
  uint64_t stdout_bytes = 0;  // produced (kept up to the cap)
  uint64_t stderr_bytes = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::string stdout_head;    // the first bytes, for the result
  std::string stderr_head;
  std::string compare;        // cases: the compare mode's name
  double start_ms = 0;        // since the VMM start
  double end_ms = 0;
};

struct CollectedFile {
  std::string guest_path;
  std::string host_path;
  uint64_t size = 0;
  std::string sha256;  // hex
  bool truncated = false;
};

// A moment of the guest's boot on its own clock (the agent's BootInfo):
// milliseconds since the guest kernel started counting.
struct GuestMark {
  std::string name;  // guest-agent/src/boot_marks.h lists them
  double ms = 0;
};

// One phase of the VMM's own start (runtime/vmm/machine.h BootPhase):
// when (ms since the VMM started, like the rest of the timeline) and the
// VMM process's CPU time then (from its fork).
struct HostPhase {
  std::string name;
  double ms = 0;
  double cpu_ms = 0;
};

struct Timeline {
  double vmm_start_unix_ms = 0;
  double kernel_entry_ms = 0;  // first KVM_RUN
  double vmm_start_cpu_ms = 0; // the VMM process's CPU time from its fork to its first KVM_RUN
  double agent_ready_ms = 0;
  double shutdown_ms = 0;      // the shutdown request
  double end_ms = 0;           // the VM gone
  std::string start;           // "boot" or "snapshot" (restored); empty when no VM started
  std::vector<GuestMark> guest;  // the guest's boot, booted VMs with a 1.7+ agent only
  std::vector<HostPhase> host; // the VMM's phases in order, to its first KVM_RUN; empty when it never ran
};

// The job's network, when it had one ([network] mode egress or open).
struct NetworkResult {
  std::string mode;     // "egress", "open"
  std::string backend;  // "passt", "tap"
  net::NetReport report;
};

struct JobResult {
  std::string job;
  Verdict verdict = Verdict::kOk;
  std::string message;
  std::vector<RunResult> steps;  // steps and the process
  std::vector<RunResult> cases;
  std::vector<CollectedFile> files;
  bool outputs_truncated = false;
  Timeline timeline;
  std::optional<NetworkResult> network;
  std::string console_tail;      // the guest's last console lines, on XX
  bool seccomp_violation = false;  // a VMM thread made a forbidden system call (XX)
};

}  // namespace husk::job
