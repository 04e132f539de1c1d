// A job: one Exec request's process tree and the agent's state for it
// (pipes, credits, deadlines, limits), plus spawn_job, which starts it.
//
// The child runs in a new session (so the process group is the job's tree
// when there are no cgroups) and, when cgroups are on, in its own cgroup.
// Start-up failures are reported by the child through a close-on-exec pipe
// as {stage, errno}, which becomes an ExecFailed event.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "guest-agent/protocol/protocol.h"
#include "guest-agent/src/cgroup.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

struct Job {
  uint64_t serial = 0;  // agent-wide, names the cgroup and the epoll keys
  uint64_t conn = 0;    // the serial of the connection that started it
  uint32_t id = 0;      // the Exec's request id on that connection
  bool orphan = false;  // its connection is gone: output discarded
  agent::proto::Limits limits;
  agent::proto::StdinMode stdin_mode = agent::proto::StdinMode::kNone;
  bool pty = false;
  Cgroup cgroup;

  pid_t pid = -1;
  UniqueFd out;  // stdout read end, or a dup of the PTY master
  UniqueFd err;  // stderr read end (none with a PTY)
  UniqueFd in;   // stdin write end, or a dup of the PTY master
  // The PTY master itself, never polled, held until the leader is reaped.
  // Closing the master's last fd hangs up the terminal: SIGHUP for the
  // session's leader. A job that closes its terminal before it exits (cat
  // at end of file) makes `out` read EIO while it is still exiting; `out`
  // is closed then, and this keeps the terminal up until the leader is gone.
  UniqueFd tty;
  bool out_registered = false;
  bool err_registered = false;
  bool in_registered = false;

  // Output flow control: bytes the host still lets us send per stream.
  uint64_t credit_out = 0;
  uint64_t credit_err = 0;
  uint64_t output_total = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  bool discarding = false;  // past the output cap or orphaned: drain and drop
  // Coalescing (server_jobs.cpp): a busy pipe with less than a frame in it
  // is left to fill until *_hold_ns, so a frame carries many small writes.
  int64_t out_read_ns = 0;  // last read
  int64_t err_read_ns = 0;
  int64_t out_hold_ns = 0;  // 0: not held
  int64_t err_hold_ns = 0;

  // Stdin: bytes received but not yet written to the pipe.
  std::string stdin_buf;
  uint64_t stdin_credit_outstanding = 0;  // granted to the host, not yet received
  uint64_t stdin_written_ungranted = 0;   // written to the pipe, not yet re-granted
  bool stdin_close_requested = false;

  int64_t start_ns = 0;
  int64_t end_ns = 0;       // when the leader was reaped
  int64_t deadline_ns = 0;  // wall deadline (then the kill grace's end); 0 none
  bool soft_killed = false; // limits.kill_signal was sent at the wall deadline
  int64_t linger_ns = 0;    // after the leader exits: give up on open pipes
  int64_t next_cpu_poll_ns = 0;

  bool leader_done = false;
  int wait_status = 0;
  rusage usage{};
  agent::proto::ExitReason reason = agent::proto::ExitReason::kNormal;

  void set_reason(agent::proto::ExitReason r) {
    if (reason == agent::proto::ExitReason::kNormal) reason = r;
  }
};

struct SpawnOptions {
  bool reset_oom_score = false;  // the agent lowered its own; the job must not inherit it
  bool cpu_rlimit = false;       // no cgroups: RLIMIT_CPU stands in for the cpu limit
};

struct SpawnError {
  agent::proto::ExecStage stage = agent::proto::ExecStage::kExec;
  int err = 0;
};

// Starts req in `job` (whose cgroup, if any, is already created). On success
// fills job.pid and the fds (agent ends non-blocking) and returns true.
bool spawn_job(Job& job, const agent::proto::Exec& req, const SpawnOptions& opts,
               SpawnError& error);

}  // namespace husk::guest
