#include "guest-agent/src/job.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace husk::guest {

namespace proto = agent::proto;

namespace {

// Pipe buffer for a job's stdin, stdout and stderr (the default is 64 KiB):
// the job writes ahead while the agent waits for the host, and the agent
// reads a whole Output frame (1 MiB) at a time. Pages are used only as the
// pipe fills.
constexpr int kJobPipeSize = 1 << 20;

// What the child sends back when a step fails: stage, errno.
struct ChildReport {
  int32_t stage;
  int32_t err;
};

[[noreturn]] void child_fail(int report_fd, proto::ExecStage stage) {
  const ChildReport r{static_cast<int32_t>(stage), errno};
  [[maybe_unused]] const ssize_t n = ::write(report_fd, &r, sizeof(r));
  ::_exit(127);
}

bool make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  return true;
}

bool set_nonblock(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// Everything the child needs, prepared before fork so the child allocates
// nothing (fork in a process that has mlockall'd everything is cheap, but
// malloc after fork is still best avoided).
struct ChildPlan {
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* cwd = "/";
  const char* pty_slave = nullptr;
  int stdin_fd = -1;  // -1: /dev/null
  int stdout_fd = -1;
  int stderr_fd = -1;
  int cgroup_procs = -1;
  uint32_t uid = proto::kKeepId;
  uint32_t gid = proto::kKeepId;
  uint64_t cpu_ms = 0;  // RLIMIT_CPU fallback, 0 none
  uint64_t open_files = 0;  // RLIMIT_NOFILE, 0 none
  uint64_t file_size = 0;   // RLIMIT_FSIZE in bytes, 0 none
  bool reset_oom = false;
};

[[noreturn]] void run_child(const ChildPlan& p, int report) {
  // The agent blocks SIGCHLD/SIGTERM/SIGINT for its signalfd and ignores
  // SIGPIPE; a job starts with the defaults.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);

  if (p.cgroup_procs >= 0 && ::write(p.cgroup_procs, "0", 1) != 1) {
    child_fail(report, proto::ExecStage::kCgroup);
  }
  if (p.reset_oom) {
    const int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) child_fail(report, proto::ExecStage::kOomScore);
    ::close(fd);
  }
  if (::setsid() < 0) child_fail(report, proto::ExecStage::kSetsid);

  if (p.pty_slave != nullptr) {
    // Opened after setsid, so it becomes the session's controlling terminal.
    const int tty = ::open(p.pty_slave, O_RDWR);
    if (tty < 0 || ::ioctl(tty, TIOCSCTTY, 0) != 0) child_fail(report, proto::ExecStage::kStdio);
    for (int fd = 0; fd < 3; ++fd) {
      if (::dup2(tty, fd) < 0) child_fail(report, proto::ExecStage::kStdio);
    }
    if (tty > 2) ::close(tty);
  } else {
    const int in = p.stdin_fd >= 0 ? p.stdin_fd : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(p.stdout_fd, 1) < 0 || ::dup2(p.stderr_fd, 2) < 0) {
      child_fail(report, proto::ExecStage::kStdio);
    }
  }

  // No core files: a crashing job must not fill the guest's disk.
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) child_fail(report, proto::ExecStage::kRlimit);
  if (p.cpu_ms != 0) {
    const rlim_t secs = (p.cpu_ms + 999) / 1000;
    const rlimit cpu{secs, secs + 1};
    if (::setrlimit(RLIMIT_CPU, &cpu) != 0) child_fail(report, proto::ExecStage::kRlimit);
  }
  // Soft and hard alike, so the job cannot raise them again. A value the
  // kernel refuses (open files above fs.nr_open) fails the start, stage rlimit.
  if (p.open_files != 0) {
    const rlimit nofile{p.open_files, p.open_files};
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) child_fail(report, proto::ExecStage::kRlimit);
  }
  if (p.file_size != 0) {
    // A write past it raises SIGXFSZ, which kills the job (reported as a signal).
    const rlimit fsize{p.file_size, p.file_size};
    if (::setrlimit(RLIMIT_FSIZE, &fsize) != 0) child_fail(report, proto::ExecStage::kRlimit);
  }
  if (::chdir(p.cwd) != 0) child_fail(report, proto::ExecStage::kChdir);
  if (p.gid != proto::kKeepId) {
    if (::setgroups(0, nullptr) != 0) child_fail(report, proto::ExecStage::kSetgroups);
    if (::setgid(p.gid) != 0) child_fail(report, proto::ExecStage::kSetgid);
  }
  if (p.uid != proto::kKeepId && ::setuid(p.uid) != 0) {
    child_fail(report, proto::ExecStage::kSetuid);
  }
  // execvpe searches the caller's PATH, not envp's: the job's own
  // environment becomes ours first, so argv[0] is looked up in the job's
  // PATH as the protocol says (glibc's default path when it has none).
  environ = const_cast<char**>(p.envp.data());
  ::execvpe(p.argv[0], p.argv.data(), p.envp.data());
  child_fail(report, proto::ExecStage::kExec);
}

}  // namespace

bool spawn_job(Job& job, const proto::Exec& req, const SpawnOptions& opts, SpawnError& error) {
  auto fail = [&error](proto::ExecStage stage, int err) {
    error = SpawnError{stage, err};
    return false;
  };
  ChildPlan plan;
  // execvpe takes char* const[]; it does not write through them, and the
  // strings live in `req` until the child has exec'd or failed.
  for (const std::string& a : req.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  for (const std::string& e : req.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);
  if (!req.cwd.empty()) plan.cwd = req.cwd.c_str();
  plan.uid = req.uid;
  plan.gid = req.gid;
  plan.reset_oom = opts.reset_oom_score;
  plan.cpu_ms = opts.cpu_rlimit ? req.limits.cpu_ms : 0;
  plan.open_files = req.limits.open_files;
  plan.file_size = req.limits.file_size;
  plan.cgroup_procs = job.cgroup.procs_fd();

  UniqueFd child_in, child_out, child_err;
  char slave_name[128] = {};
  if (req.pty) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0 ||
        ::ptsname_r(master.get(), slave_name, sizeof(slave_name)) != 0) {
      return fail(proto::ExecStage::kPty, errno);
    }
    const winsize ws{req.rows, req.cols, 0, 0};
    ::ioctl(master.get(), TIOCSWINSZ, &ws);
    plan.pty_slave = slave_name;
    if (req.stdin_mode != proto::StdinMode::kNone) {
      job.in.reset(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
      if (!job.in) return fail(proto::ExecStage::kPty, errno);
    }
    job.out.reset(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
    if (!job.out) return fail(proto::ExecStage::kPty, errno);
    job.tty = std::move(master);
  } else {
    if (!make_pipe(job.out, child_out) || !make_pipe(job.err, child_err)) {
      return fail(proto::ExecStage::kPipe, errno);
    }
    if (req.stdin_mode != proto::StdinMode::kNone && !make_pipe(child_in, job.in)) {
      return fail(proto::ExecStage::kPipe, errno);
    }
    plan.stdin_fd = child_in.get();
    plan.stdout_fd = child_out.get();
    plan.stderr_fd = child_err.get();
  }
  for (const UniqueFd* fd : {&job.out, &job.err, &job.in}) {
    if (fd->valid() && !set_nonblock(fd->get())) return fail(proto::ExecStage::kPipe, errno);
    // Best effort, only speed depends on it (a PTY refuses, and so may
    // fs.pipe-max-size for an agent that is not root).
    if (fd->valid() && !req.pty) ::fcntl(fd->get(), F_SETPIPE_SZ, kJobPipeSize);
  }

  UniqueFd report_read, report_write;
  if (!make_pipe(report_read, report_write)) return fail(proto::ExecStage::kPipe, errno);

  const pid_t pid = ::fork();
  if (pid < 0) return fail(proto::ExecStage::kFork, errno);
  if (pid == 0) run_child(plan, report_write.get());

  report_write.reset();
  child_in.reset();
  child_out.reset();
  child_err.reset();
  // The child writes 8 bytes and exits on failure; a successful exec closes
  // the pipe (close-on-exec) and read returns 0. This blocks only for the
  // child's few set-up system calls.
  ChildReport report{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(report))) {
    ::waitpid(pid, nullptr, 0);
    // The stage comes from our own child; still range-checked before the
    // cast so a torn value cannot become an invalid enum.
    const auto stage = report.stage >= 0 && report.stage < int32_t(proto::ExecStage::kCount)
                           ? static_cast<proto::ExecStage>(report.stage)
                           : proto::ExecStage::kExec;
    return fail(stage, report.err);
  }
  job.pid = pid;
  return true;
}

}  // namespace husk::guest
