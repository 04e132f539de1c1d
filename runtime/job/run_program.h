// One program run in a job's VM (a step, the process, or one case): the
// agent request built from the Job's values, output streamed or captured
// under the host's own caps, the host's own deadline, and the verdict.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/agent/vm_session.h"
#include "runtime/job/job.h"
#include "runtime/job/job_result.h"

namespace husk::job {

struct ProgramRun {
  std::string name;
  RunKind kind = RunKind::kStep;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::optional<std::string> stdin_data;  // nullopt: no stdin (/dev/null)
  Limits limits;
  int stdout_fd = -1;          // stream stdout here as it comes; -1: do not
  int stderr_fd = -1;
  bool keep_stdout = false;    // keep all of stdout (up to its cap), for a comparison
};

struct ProgramOutcome {
  RunResult result;
  std::string stdout_all;      // keep_stdout only
  bool vm_lost = false;        // the VM or its agent is gone: nothing more can run
  bool output_closed = false;  // husk's own stdout/stderr went away
};

// How much of each stream the result keeps as text.
inline constexpr size_t kHeadBytes = 64 * 1024;
// A case's stdout is kept whole for its comparison up to this, when the
// job gives no stdout_max.
inline constexpr uint64_t kDefaultKeepMax = 64ull << 20;

using Clock = std::chrono::steady_clock;

[[nodiscard]] ProgramOutcome run_program(agent::VmSession& session, const ProgramRun& run,
                                         Clock::time_point vmm_start);

}  // namespace husk::job
