#include "runtime/job/run_program.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "runtime/job/units.h"
#include "runtime/job/watchdog.h"

namespace husk::job {

namespace {

namespace proto = agent::proto;

// How long past a run's wall limit (and kill grace) the host waits for the
// agent's report before it stops the VM itself: the agent client's own
// deadline for a run's end, so that either ends the run the same way.
constexpr auto kHostGrace = agent::AgentClient::kExitGrace;
// Between kill_signal and SIGKILL when the job names no kill_grace.
constexpr std::chrono::milliseconds kDefaultKillGrace{1000};

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Writes all of `data`, waiting out EAGAIN and EINTR; false when the
// reader has gone (EPIPE) or the descriptor fails.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

proto::Limits agent_limits(const Limits& l) {
  proto::Limits out;
  const auto ms = [](const std::optional<std::chrono::milliseconds>& d) {
    return d ? static_cast<uint64_t>(d->count()) : 0;
  };
  out.wall_ms = ms(l.wall_time);
  out.cpu_ms = ms(l.cpu_time);
  out.memory_bytes = l.memory.value_or(0);
  out.pids = l.processes.value_or(0);
  out.open_files = l.open_files.value_or(0);
  out.file_size = l.file_size.value_or(0);
  if (l.kill_signal) {
    out.kill_signal = *l.kill_signal;
    out.kill_grace_ms = static_cast<uint64_t>(l.kill_grace.value_or(kDefaultKillGrace).count());
  }
  // The agent's cap is on both streams together; the host holds each one
  // to its own cap as well.
  if (l.stdout_max && l.stderr_max) out.output_bytes = *l.stdout_max + *l.stderr_max;
  return out;
}

// One output stream: what is kept, what is streamed, and its cap.
struct StreamState {
  uint64_t cap = 0;  // 0: none
  uint64_t bytes = 0;
  bool truncated = false;
  bool keep_all = false;
  int fd = -1;
  std::string head;
  std::string all;

  // Takes a chunk; false when it crossed the cap (the run must stop).
  bool take(std::string_view data, bool& output_closed) {
    const uint64_t room = cap == 0 ? data.size() : (bytes >= cap ? 0 : cap - bytes);
    const std::string_view kept = data.substr(0, static_cast<size_t>(std::min<uint64_t>(room, data.size())));
    bytes += kept.size();
    if (head.size() < kHeadBytes) head.append(kept.substr(0, kHeadBytes - head.size()));
    if (keep_all) all.append(kept);
    if (fd >= 0 && !output_closed && !write_all(fd, kept)) output_closed = true;
    if (kept.size() < data.size()) truncated = true;
    return !truncated;
  }
};

std::vector<std::string> env_list(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

void set_verdict_from_exit(RunResult& r, const proto::Exited& e, const Limits& limits) {
  r.exit_code = e.exit_code;
  r.signal = e.signal;
  r.wall_ms = static_cast<double>(e.wall_us) / 1e3;
  r.cpu_ms = static_cast<double>(e.cpu_user_us + e.cpu_sys_us) / 1e3;
  r.peak_memory_bytes = e.peak_memory_bytes;
  r.stdout_truncated = r.stdout_truncated || e.stdout_truncated;
  r.stderr_truncated = r.stderr_truncated || e.stderr_truncated;
  if (e.reason != proto::ExitReason::kNormal) r.limit = proto::reason_name(e.reason);
  switch (e.reason) {
    case proto::ExitReason::kWallTimeout:
      r.verdict = Verdict::kTimeout;
      r.message = fmt::format("wall time limit of {} reached", format_duration(limits.wall_time.value_or(std::chrono::milliseconds(0))));
      return;
    case proto::ExitReason::kCpuLimit:
      r.verdict = Verdict::kTimeout;
      r.message = fmt::format("CPU time limit of {} reached", format_duration(limits.cpu_time.value_or(std::chrono::milliseconds(0))));
      return;
    case proto::ExitReason::kMemoryLimit:
      r.verdict = Verdict::kMemoryLimit;
      // Without a limit of its own the job met the agent's: the guest's
      // RAM less what its kernel and the agent keep.
      r.message = limits.memory ? fmt::format("memory limit of {} reached", format_size(*limits.memory))
                                : "out of memory: the job used all the memory the guest has for it (no memory limit was set)";
      return;
    case proto::ExitReason::kOutputLimit:
      r.verdict = Verdict::kOutputLimit;
      r.message = "output limit reached";
      return;
    case proto::ExitReason::kPidsLimit:
    case proto::ExitReason::kNormal:
    case proto::ExitReason::kCount:
      break;
  }
  const std::string pids_note = e.pids_limit_hit ? fmt::format(" (process limit of {} reached)", limits.processes.value_or(0)) : "";
  if (e.signal != 0) {
    const char* abbrev = ::sigabbrev_np(e.signal);
    r.verdict = Verdict::kSignaled;
    r.message = fmt::format("killed by signal {} (SIG{}){}", e.signal, abbrev != nullptr ? abbrev : "?", pids_note);
  } else if (e.exit_code != 0) {
    r.verdict = Verdict::kRuntimeError;
    r.message = fmt::format("exit status {}{}", e.exit_code, pids_note);
  } else {
    r.verdict = Verdict::kOk;
    r.message = pids_note.empty() ? "" : pids_note.substr(1);
  }
}

}  // namespace

ProgramOutcome run_program(agent::VmSession& session, const ProgramRun& run, Clock::time_point vmm_start) {
  ProgramOutcome out;
  RunResult& r = out.result;
  r.name = run.name;
  r.kind = run.kind;
  r.start_ms = ms_since(vmm_start);

  agent::ExecRequest req;
  req.argv = run.argv;
  req.env = env_list(run.env);
  req.cwd = run.cwd;
  req.uid = run.uid;
  req.gid = run.gid;
  if (run.stdin_data) {
    req.stdin_mode = proto::StdinMode::kData;
    req.stdin_data = *run.stdin_data;
  }
  req.limits = agent_limits(run.limits);

  StreamState streams[2];
  streams[0].cap = run.limits.stdout_max.value_or(run.keep_stdout ? kDefaultKeepMax : 0);
  streams[0].keep_all = run.keep_stdout;
  streams[0].fd = run.stdout_fd;
  streams[1].cap = run.limits.stderr_max.value_or(0);
  streams[1].fd = run.stderr_fd;
  bool over_cap = false;
  bool killed = false;
  agent::AgentClient& client = session.agent();
  const auto on_data = [&](int s, std::string_view data) {
    if (!streams[s].take(data, out.output_closed)) over_cap = true;
    if ((over_cap || out.output_closed) && !killed) {
      killed = true;
      (void)client.signal_running(SIGKILL);
    }
  };
  agent::ExecCallbacks callbacks;
  callbacks.on_stdout = [&](std::string_view d) { on_data(0, d); };
  callbacks.on_stderr = [&](std::string_view d) { on_data(1, d); };

  // The host's own deadline: the agent's report must come by the wall
  // limit plus the kill grace plus kHostGrace, or the VM is stopped.
  // The watchdog is for what the agent client's own deadline cannot see: a
  // host-side callback that blocks (husk's own stdout not read).
  std::unique_ptr<Watchdog> watchdog;
  std::optional<Clock::time_point> deadline;
  if (run.limits.wall_time) {
    const auto grace = run.limits.kill_signal ? run.limits.kill_grace.value_or(kDefaultKillGrace)
                                              : std::chrono::milliseconds(0);
    deadline = Clock::now() + *run.limits.wall_time + grace + kHostGrace;
    auto started = Watchdog::start(*deadline, [&session] { session.kill("the guest did not end a run by its deadline"); });
    if (!started) {
      // No host clock, no run: a limit husk cannot enforce is not promised.
      out.vm_lost = true;
      r.verdict = Verdict::kInternal;
      r.message = started.error().message;
      session.kill(started.error().message);
      return out;
    }
    watchdog = std::move(*started);
  }
  auto result = client.exec(req, callbacks);
  const bool fired = watchdog && watchdog->disarm();
  // Either clock may see the deadline first; the run ends the same way.
  const bool host_deadline = fired || (!result && deadline && Clock::now() >= *deadline);
  r.end_ms = ms_since(vmm_start);
  r.stdout_bytes = streams[0].bytes;
  r.stderr_bytes = streams[1].bytes;
  r.stdout_truncated = streams[0].truncated;
  r.stderr_truncated = streams[1].truncated;
  r.stdout_head = std::move(streams[0].head);
  r.stderr_head = std::move(streams[1].head);
  out.stdout_all = std::move(streams[0].all);

  if (!result) {
    out.vm_lost = true;
    r.wall_ms = r.end_ms - r.start_ms;
    if (host_deadline) {
      // The agent did not report in time; the run's processes die with the
      // VM, stopped here: a wall timeout, as the agent would have reported.
      if (!fired) session.kill("the guest did not end a run by its deadline");
      r.verdict = Verdict::kTimeout;
      r.limit = proto::reason_name(proto::ExitReason::kWallTimeout);
      r.signal = SIGKILL;
      r.message = fmt::format("no answer from the guest {} s past the wall limit of {}: the VM was stopped",
                              std::chrono::duration_cast<std::chrono::seconds>(kHostGrace).count(),
                              format_duration(*run.limits.wall_time));
    } else {
      r.verdict = Verdict::kInternal;
      r.message = fmt::format("lost the guest agent: {}", result.error().message);
    }
    return out;
  }
  if (!result->started) {
    r.exit_code = result->failure.err == ENOENT ? 127 : 126;
    r.verdict = Verdict::kRuntimeError;
    r.message = fmt::format("cannot run {}: {} failed: {}", run.argv.empty() ? "" : run.argv.front(),
                            proto::stage_name(result->failure.stage), ::strerror(result->failure.err));
    return out;
  }
  set_verdict_from_exit(r, result->exit, run.limits);
  if (over_cap && r.verdict != Verdict::kTimeout) {
    r.verdict = Verdict::kOutputLimit;
    r.message = streams[0].truncated
                    ? fmt::format("stdout passed its limit of {}", format_size(streams[0].cap))
                    : fmt::format("stderr passed its limit of {}", format_size(streams[1].cap));
  }
  if (out.output_closed) {
    r.verdict = Verdict::kInternal;
    r.message = "husk's output was closed: the run was stopped";
  }
  return out;
}

}  // namespace husk::job
