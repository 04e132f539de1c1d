// Jobs in the agent's loop: starting them, pumping stdin and output under
// credit, reaping, limits (wall deadline, CPU time, output cap) and the
// final Exited event. A job belongs to the connection that started it
// (Job::conn): only that connection's frames reach it (find_job), its
// output and events go only there, and only that connection's send queue
// holds its pipes back.
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "guest-agent/src/log.h"
#include "guest-agent/src/server.h"
#include "guest-agent/src/sys.h"

namespace husk::guest {

namespace proto = agent::proto;

namespace {
// Stdin credit: with less than a few frames the host waits on the credit's
// round trip; what is granted may sit in stdin_buf while the job does not
// read, so it is the bound of that buffer too.
constexpr uint64_t kStdinWindow = 2u << 20;
constexpr uint64_t kStdinRegrant = 512 * 1024;
constexpr uint64_t kMaxCredit = uint64_t{1} << 40;  // sum of grants is clamped, never wraps
constexpr int64_t kCpuPollNs = 10'000'000;
// After the leader exits (and the rest of its tree was killed), pipes still
// open this long with nothing to wait for are closed: a process that
// escaped the tree must not hold the job open.
constexpr int64_t kLingerNs = 2'000'000'000;
constexpr uint64_t kMaxWallMs = uint64_t{1} << 40;
// An Output frame at most: 1 MiB with its header, the pipe's size, so one
// read and one frame take all a busy pipe holds (each system call costs
// more in a nested guest than the bytes it moves); a whole number of the
// guest's 64 KiB vsock packets, so no small tail packet follows a frame.
constexpr size_t kOutputFrame = size_t{1} << 20;
static_assert(kOutputFrame - proto::kLengthSize <= proto::kMaxFrameBody);
constexpr size_t kOutputData = kOutputFrame - proto::kOutputHeaderSize;
// Output read per wake-up of one pipe, frame by frame: a writer that keeps
// its pipe full is served with few trips round the loop.
constexpr size_t kOutputRound = 4 * kOutputData;
// Output coalescing. Every frame the guest sends costs about as much as a
// full one (a vsock packet, a virtqueue kick, an exit to the VMM), so a job
// that writes small pieces (4 KiB from busybox's head or cat) would cap the
// stream at a fraction of the link, and so would the small tail left in the
// pipe after each full frame. A pipe read within kBusyWindowNs of its last
// read, holding less than a frame, is left for kCoalesceNs while the job
// fills it. An occasional write (a prompt, a log line) is read at once, the
// end of the output too (the pipe hung up); a stream of small writes waits
// at most kCoalesceNs.
constexpr int64_t kCoalesceNs = 4'000'000;
constexpr int64_t kBusyWindowNs = 2 * kCoalesceNs;

std::string too_large_text() {
  return "Exec: argv and env larger than " + std::to_string(proto::kMaxExecArgBytes) +
         " bytes (each string counts its length + 9, as Linux counts them)";
}
}  // namespace

// Request ids are per connection: another connection's job with the same
// id is not this one.
Job* Server::find_job(const Connection& c, uint32_t id) {
  for (auto& [serial, job] : jobs_) {
    if (!job->orphan && job->conn == c.serial && job->id == id) return job.get();
  }
  return nullptr;
}

void Server::on_exec_args(Connection& c, uint32_t id, proto::ExecArgs part) {
  if (find_job(c, id) != nullptr) return send_error(c, id, EEXIST, "request id names a running job");
  // kMaxExecArgBytes bounds what the agent holds, not what one connection
  // does: the others' collected bytes count too.
  uint64_t others = 0;
  for (const auto& [serial, other] : conns_) {
    if (serial != c.serial) others += other.exec_args.bytes();
  }
  switch (c.exec_args.add(id, std::move(part), others)) {
    case proto::ExecArgsCollector::Outcome::kOk:
    case proto::ExecArgsCollector::Outcome::kRefused: return;
    case proto::ExecArgsCollector::Outcome::kTooLarge: return send_error(c, id, E2BIG, too_large_text());
    case proto::ExecArgsCollector::Outcome::kTooMany:
      send_error(c, id, EBUSY, "ExecArgs: more than " + std::to_string(proto::kMaxPendingExecs) +
                                   " requests in parts at once");
      c.close_after_flush = true;
      return;
  }
}

void Server::on_exec(Connection& c, uint32_t id, proto::Exec req) {
  if (find_job(c, id) != nullptr) return send_error(c, id, EEXIST, "request id names a running job");
  switch (c.exec_args.finish(id, req)) {
    case proto::ExecArgsCollector::Outcome::kOk: break;
    case proto::ExecArgsCollector::Outcome::kRefused: return;  // answered at the refusal
    case proto::ExecArgsCollector::Outcome::kTooLarge:
    case proto::ExecArgsCollector::Outcome::kTooMany: return send_error(c, id, E2BIG, too_large_text());
  }
  auto failed = [&](proto::ExecStage stage, int err) { send(c, id, proto::ExecFailed{stage, err}); };
  if (req.argv.empty() || req.argv[0].empty()) return failed(proto::ExecStage::kRequest, EINVAL);
  if (!opts_.cgroups && (req.limits.memory_bytes != 0 || req.limits.pids != 0)) {
    return failed(proto::ExecStage::kCgroup, EOPNOTSUPP);  // would silently not be enforced
  }
  auto job = std::make_unique<Job>();
  job->serial = next_serial_++;
  job->id = id;
  job->conn = c.serial;
  job->limits = req.limits;
  job->stdin_mode = req.stdin_mode;
  job->pty = req.pty;
  if (opts_.cgroups) {
    if (const int err = job->cgroup.create(opts_.cgroup_root, job->serial, req.limits); err != 0) {
      return failed(proto::ExecStage::kCgroup, err);
    }
  }
  const SpawnOptions spawn_opts{opts_.protected_self, !opts_.cgroups && req.limits.cpu_ms != 0};
  SpawnError error;
  job->start_ns = monotonic_ns();
  if (!spawn_job(*job, req, spawn_opts, error)) {
    if (!job->cgroup.remove()) dead_cgroups_.push_back(std::move(job->cgroup));
    return failed(error.stage, error.err);
  }
  if (req.limits.wall_ms != 0) {
    job->deadline_ns = job->start_ns + int64_t(std::min(req.limits.wall_ms, kMaxWallMs)) * 1000000;
  }
  if (opts_.cgroups && req.limits.cpu_ms != 0) job->next_cpu_poll_ns = job->start_ns + kCpuPollNs;
  send(c, id, proto::Started{static_cast<uint32_t>(job->pid)});
  if (req.stdin_mode == proto::StdinMode::kData) {
    job->stdin_buf = std::move(req.stdin_data);
    job->stdin_close_requested = true;
  } else if (req.stdin_mode == proto::StdinMode::kStream) {
    job->stdin_credit_outstanding = kStdinWindow;
    send(c, id, proto::Credit{proto::Stream::kStdin, uint32_t{kStdinWindow}});
  }
  Job& ref = *job;
  jobs_.emplace(ref.serial, std::move(job));
  if (ref.stdin_close_requested && ref.stdin_buf.empty()) close_stdin(ref, true);
  update_interest(ref);
}

void Server::on_credit(Connection& c, uint32_t id, const proto::Credit& m) {
  Job* job = find_job(c, id);
  if (job == nullptr || m.stream == proto::Stream::kStdin) return;
  uint64_t& credit = m.stream == proto::Stream::kStdout ? job->credit_out : job->credit_err;
  credit = std::min(credit + m.bytes, kMaxCredit);
  update_interest(*job);
}

void Server::on_stdin(Connection& c, uint32_t id, std::string data, bool close) {
  Job* job = find_job(c, id);
  if (job == nullptr || job->stdin_mode != proto::StdinMode::kStream) return;
  if (close) {
    job->stdin_close_requested = true;
    if (job->stdin_buf.empty()) close_stdin(*job, true);
    return update_interest(*job);
  }
  if (job->stdin_close_requested) return;
  // The host may send only what we granted; more would let it grow our
  // buffer without bound, so it is dropped (and logged: a host bug).
  if (data.size() > job->stdin_credit_outstanding) {
    HUSK_LOG("job %u: %zu stdin bytes beyond credit dropped", id, data.size());
    return;
  }
  job->stdin_credit_outstanding -= data.size();
  if (!job->in) {
    // The job closed its stdin: swallow the bytes, keep the host moving.
    job->stdin_written_ungranted += data.size();
  } else {
    job->stdin_buf += data;
  }
  write_stdin(*job);
}

void Server::on_signal(Connection& c, uint32_t id, int signo) {
  Job* job = find_job(c, id);
  if (job == nullptr || signo <= 0 || signo > SIGRTMAX || job->leader_done) return;
  ::kill(-job->pid, signo);  // the job's process group (it called setsid)
}

void Server::on_resize(Connection& c, uint32_t id, const proto::Resize& m) {
  Job* job = find_job(c, id);
  if (job == nullptr || !job->pty || job->leader_done) return;
  // job.tty is the PTY master until the leader is reaped (leader_done).
  const int master = job->tty.get();
  if (master < 0) return;
  // Any size is the host's to choose (0x0 too, as a terminal may report);
  // the kernel sends SIGWINCH to the terminal's foreground process group
  // when it changes.
  const winsize ws{m.rows, m.cols, 0, 0};
  if (::ioctl(master, TIOCSWINSZ, &ws) != 0) HUSK_LOG("job %u: TIOCSWINSZ: %s", id, std::strerror(errno));
}

void Server::on_job_event(uint64_t serial, Kind kind, uint32_t events) {
  auto it = jobs_.find(serial);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  // A hung-up pipe holds the output's end: read it now, do not coalesce.
  const bool coalesce = (events & (EPOLLHUP | EPOLLERR)) == 0;
  if (kind == kJobOut) read_output(job, proto::Stream::kStdout, coalesce);
  if (kind == kJobErr) read_output(job, proto::Stream::kStderr, coalesce);
  if (kind == kJobIn) write_stdin(job);
  maybe_finish(job);
}

void Server::read_output(Job& job, proto::Stream stream, bool coalesce) {
  const bool is_out = stream == proto::Stream::kStdout;
  UniqueFd& fd = is_out ? job.out : job.err;
  uint64_t& credit = is_out ? job.credit_out : job.credit_err;
  int64_t& last_read = is_out ? job.out_read_ns : job.err_read_ns;
  int64_t& hold = is_out ? job.out_hold_ns : job.err_hold_ns;
  if (read_buf_.size() < proto::kMaxChunk) read_buf_.resize(proto::kMaxChunk);
  for (size_t round = 0; fd && round < kOutputRound;) {
    // Looked up each time: sending a frame may have dropped the
    // connection (and orphaned the job, which then discards).
    Connection* const c = job.discarding ? nullptr : conn_of(job);
    // Something waits to be sent: the bytes stay in the pipe until the
    // queue is empty (flush_out re-arms the pipes then).
    if (!job.discarding && (c == nullptr || c->queued() != 0)) break;
    // Discarded output goes to scratch, never to the connection's Output
    // buffer, which may hold a frame still being sent.
    if (c != nullptr && c->output_buf.empty()) c->output_buf.resize(kOutputFrame);
    uint8_t* const data = c != nullptr ? c->output_buf.data() + proto::kOutputHeaderSize
                                       : reinterpret_cast<uint8_t*>(read_buf_.data());
    const size_t budget = job.discarding ? read_buf_.size()
                                         : static_cast<size_t>(std::min<uint64_t>(credit, kOutputData));
    if (budget == 0) break;
    const int64_t now = monotonic_ns();
    if (coalesce && !job.discarding && hold == 0 && last_read != 0 && now - last_read < kBusyWindowNs) {
      int waiting = 0;
      if (::ioctl(fd.get(), FIONREAD, &waiting) == 0 && waiting > 0 && static_cast<size_t>(waiting) < budget) {
        hold = now + kCoalesceNs;  // check_timers reads it then
        break;
      }
    }
    const ssize_t n = ::read(fd.get(), data, budget);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (n <= 0) {
      // EOF, or EIO from a PTY whose slave is closed. A PTY's master stays
      // open in job.tty: this closes only its dup, and unpolls it, since a
      // hung-up master polls ready for good.
      close_output(job, stream);
      break;
    }
    last_read = now;
    round += static_cast<size_t>(n);
    if (job.discarding) continue;
    size_t keep = static_cast<size_t>(n);
    const uint64_t cap = job.limits.output_bytes;
    if (cap != 0 && job.output_total + keep > cap) {
      keep = static_cast<size_t>(cap - job.output_total);
      (is_out ? job.stdout_truncated : job.stderr_truncated) = true;
      job.set_reason(proto::ExitReason::kOutputLimit);
      // Killing, not discarding: a job that spews output would otherwise run to
      // its deadline, and the verdict (OL) is already decided.
      kill_tree(job);
      job.discarding = true;
    }
    if (keep != 0) {
      // keep <= n <= budget <= kOutputData: header and data fill at most
      // output_buf (kOutputFrame), within a frame. c is set: not discarding.
      const std::span<uint8_t, proto::kOutputHeaderSize> header(c->output_buf.data(), proto::kOutputHeaderSize);
      if (proto::put_output_header(header, job.id, stream, keep) == proto::Status::kOk) {
        send_output_frame(*c, proto::kOutputHeaderSize + keep);
      }
      credit -= keep;  // keep <= n <= budget <= credit
      job.output_total += keep;
    }
  }
  update_interest(job);
}

void Server::write_stdin(Job& job) {
  if (job.in && !job.stdin_buf.empty()) {
    const ssize_t n = ::write(job.in.get(), job.stdin_buf.data(), job.stdin_buf.size());
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      // EPIPE: the job closed its stdin. What is left counts as consumed.
      job.stdin_written_ungranted += job.stdin_buf.size();
      job.stdin_buf.clear();
      close_stdin(job, false);
    } else if (n > 0) {
      job.stdin_buf.erase(0, static_cast<size_t>(n));
      job.stdin_written_ungranted += static_cast<size_t>(n);
    }
  }
  if (job.stdin_mode == proto::StdinMode::kStream && !job.stdin_close_requested &&
      job.stdin_written_ungranted != 0 &&
      (job.stdin_written_ungranted >= kStdinRegrant || job.stdin_buf.empty())) {
    const uint64_t grant = job.stdin_written_ungranted;
    job.stdin_written_ungranted = 0;
    job.stdin_credit_outstanding += grant;
    // grant <= kStdinWindow: only granted bytes are ever written.
    if (Connection* c = conn_of(job)) {
      send(*c, job.id, proto::Credit{proto::Stream::kStdin, static_cast<uint32_t>(grant)});
    }
  }
  if (job.stdin_buf.empty() && job.stdin_close_requested) close_stdin(job, true);
  update_interest(job);
}

void Server::set_registered(Job& job, Kind kind, bool want) {
  UniqueFd& fd = kind == kJobOut ? job.out : kind == kJobErr ? job.err : job.in;
  bool& reg = kind == kJobOut ? job.out_registered
              : kind == kJobErr ? job.err_registered
                                : job.in_registered;
  want = want && fd.valid();
  if (want == reg) return;
  // Added and removed rather than masked: a hung-up pipe reports EPOLLHUP
  // even with no events asked for, which would spin while we lack credit.
  epoll_event ev{kind == kJobIn ? uint32_t{EPOLLOUT} : uint32_t{EPOLLIN}, {.u64 = key(job.serial, kind)}};
  const int op = want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;
  if (::epoll_ctl(epoll_.get(), op, fd.get(), &ev) != 0) {
    HUSK_LOG("epoll_ctl job %u: %s", job.id, std::strerror(errno));
    return;
  }
  reg = want;
}

void Server::update_interest(Job& job) {
  // Only the job's own connection holds it back: another's full queue does not.
  const Connection* c = conn_of(job);
  const bool sendable = c != nullptr && c->queued() == 0;
  set_registered(job, kJobOut, job.discarding || (sendable && job.credit_out > 0 && job.out_hold_ns == 0));
  set_registered(job, kJobErr, job.discarding || (sendable && job.credit_err > 0 && job.err_hold_ns == 0));
  set_registered(job, kJobIn, !job.stdin_buf.empty());
}

void Server::close_output(Job& job, proto::Stream stream) {
  const Kind kind = stream == proto::Stream::kStdout ? kJobOut : kJobErr;
  // Deregister before closing: with a PTY, job.in and job.tty share the
  // open file, so closing this fd alone would leave a stale registration
  // behind.
  set_registered(job, kind, false);
  (kind == kJobOut ? job.out : job.err).reset();
}

void Server::close_stdin(Job& job, bool send_eof) {
  if (!job.in) return;
  set_registered(job, kJobIn, false);
  // A PTY has no half-close: end of input is the terminal's EOF character.
  if (job.pty && send_eof) {
    [[maybe_unused]] const ssize_t n = ::write(job.in.get(), "\x04", 1);
  }
  job.in.reset();
  job.stdin_buf.clear();
}

void Server::kill_tree(Job& job) {
  job.cgroup.kill();
  if (!job.leader_done && job.pid > 0) ::kill(-job.pid, SIGKILL);
}

void Server::reap_children() {
  for (;;) {
    // Peek first (WNOWAIT): a job's leader is still a zombie while we kill
    // its process group, so the group id cannot have been reused.
    siginfo_t si{};
    if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0) return;
    Job* job = nullptr;
    for (auto& [serial, j] : jobs_) {
      if (j->pid == si.si_pid && !j->leader_done) job = j.get();
    }
    if (job != nullptr) kill_tree(*job);  // the job is its leader's lifetime
    int status = 0;
    rusage usage{};
    if (::wait4(si.si_pid, &status, 0, &usage) < 0 || job == nullptr) continue;
    job->leader_done = true;
    job->wait_status = status;
    job->usage = usage;
    job->end_ns = monotonic_ns();
    job->linger_ns = job->end_ns + kLingerNs;
    // The leader is gone: the terminal may hang up now (job.out, a dup,
    // still drains what the rest of the tree wrote).
    job->tty.reset();
    close_stdin(*job, false);
    maybe_finish(*job);
  }
}

void Server::check_timers() {
  const int64_t now = monotonic_ns();
  std::vector<uint64_t> serials;
  for (auto& [serial, job] : jobs_) serials.push_back(serial);
  for (uint64_t serial : serials) {
    Job& job = *jobs_.at(serial);
    if (job.leader_done) job.deadline_ns = job.next_cpu_poll_ns = 0;
    if (job.deadline_ns != 0 && now >= job.deadline_ns) {
      job.set_reason(proto::ExitReason::kWallTimeout);
      const int soft = job.limits.kill_signal;
      if (!job.soft_killed && soft > 0 && soft < NSIG && soft != SIGKILL && job.limits.kill_grace_ms > 0) {
        // The polite signal first; SIGKILL for the whole tree after the grace.
        job.soft_killed = true;
        ::kill(-job.pid, soft);
        job.deadline_ns = now + int64_t(std::min(job.limits.kill_grace_ms, kMaxWallMs)) * 1000000;
      } else {
        kill_tree(job);
        job.deadline_ns = 0;
      }
    }
    if (job.next_cpu_poll_ns != 0 && now >= job.next_cpu_poll_ns) {
      job.next_cpu_poll_ns = now + kCpuPollNs;
      if (job.cgroup.cpu_usage_us() >= job.limits.cpu_ms * 1000) {
        job.set_reason(proto::ExitReason::kCpuLimit);
        kill_tree(job);
        job.next_cpu_poll_ns = 0;
      }
    }
    // A held pipe has had its time to fill: read what is there.
    if (job.out_hold_ns != 0 && now >= job.out_hold_ns) {
      job.out_hold_ns = 0;
      read_output(job, proto::Stream::kStdout, false);
    }
    if (job.err_hold_ns != 0 && now >= job.err_hold_ns) {
      job.err_hold_ns = 0;
      read_output(job, proto::Stream::kStderr, false);
    }
    if (job.linger_ns != 0 && now >= job.linger_ns) {
      // Only pipes we could read from (not waiting on the host's credit).
      if (job.out && (job.discarding || job.credit_out > 0)) close_output(job, proto::Stream::kStdout);
      if (job.err && (job.discarding || job.credit_err > 0)) close_output(job, proto::Stream::kStderr);
      job.linger_ns = (job.out || job.err) ? now + kLingerNs : 0;
    }
    maybe_finish(job);  // last: it may erase the job
  }
  std::erase_if(dead_cgroups_, [](Cgroup& cg) { return cg.remove(); });
}

void Server::maybe_finish(Job& job) {
  if (!job.leader_done || job.out || job.err) return;
  close_stdin(job, false);
  proto::Exited ex;
  const int st = job.wait_status;
  ex.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  ex.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  if (job.cgroup.valid()) {
    const CgroupStats s = job.cgroup.stats();
    ex.cpu_user_us = s.user_us;
    ex.cpu_sys_us = s.system_us;
    ex.peak_memory_bytes = s.peak_memory;
    ex.pids_limit_hit = s.pids_max_hits != 0;
    if (s.oom_kills != 0) job.set_reason(proto::ExitReason::kMemoryLimit);
  } else {
    const auto us = [](const timeval& tv) { return uint64_t(tv.tv_sec) * 1000000 + uint64_t(tv.tv_usec); };
    ex.cpu_user_us = us(job.usage.ru_utime);
    ex.cpu_sys_us = us(job.usage.ru_stime);
    ex.peak_memory_bytes = uint64_t(job.usage.ru_maxrss) * 1024;  // ru_maxrss is in KiB
    // RLIMIT_CPU stands in for the cgroup: SIGXCPU at the soft limit.
    const bool cpu_over = ex.cpu_user_us + ex.cpu_sys_us >= job.limits.cpu_ms * 1000;
    if (job.limits.cpu_ms != 0 && (ex.signal == SIGXCPU || (ex.signal == SIGKILL && cpu_over))) {
      job.set_reason(proto::ExitReason::kCpuLimit);
    }
  }
  // Hitting pids.max is the reason only when the job then failed; a job that
  // handled the failed fork and succeeded keeps "normal" (the flag tells).
  if (ex.pids_limit_hit && (ex.signal != 0 || ex.exit_code != 0)) {
    job.set_reason(proto::ExitReason::kPidsLimit);
  }
  ex.reason = job.reason;
  ex.stdout_truncated = job.stdout_truncated;
  ex.stderr_truncated = job.stderr_truncated;
  ex.wall_us = uint64_t(job.end_ns - job.start_ns) / 1000;
  if (Connection* c = conn_of(job)) send(*c, job.id, ex);
  if (!job.cgroup.remove()) dead_cgroups_.push_back(std::move(job.cgroup));
  jobs_.erase(job.serial);
}

void Server::orphan_jobs(const Connection& c) {
  for (auto& [serial, job] : jobs_) {
    if (job->conn != c.serial) continue;
    job->orphan = true;
    job->discarding = true;
    kill_tree(*job);
    close_stdin(*job, false);
    update_interest(*job);
  }
}

}  // namespace husk::guest
