// fork_into_jail (jail.h; docs/jail.md, "step by step"): the parent checks
// the spec and prepares the root folder and the cgroup; the first child
// joins the cgroup and unshares the namespaces, then forks the jailed
// process (PID 1 of the new PID namespace), waits for it and exits the way
// it did; the jailed process enters the root folder and returns.
#include "runtime/jail/namespaces.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "runtime/common/unique_fd.h"
#include "runtime/jail/cgroup.h"
#include "runtime/jail/mounts.h"

namespace husk::jail {

namespace {

constexpr const char kHostname[] = "husk";

// Signals the first child passes on to the jailed process when a process
// (husk) sent them. Those from the kernel (a terminal's ^C, hang-up) reach
// the jailed process directly: it is in the same process group.
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

volatile sig_atomic_t jailed_pid = 0;

void forward(int sig, siginfo_t* info, void* /*context*/) {
  if (jailed_pid > 0 && info != nullptr && info->si_code <= 0) ::kill(jailed_pid, sig);
}

sigset_t forwarded_set() {
  sigset_t set;
  ::sigemptyset(&set);
  for (const int sig : kForwarded) ::sigaddset(&set, sig);
  return set;
}

// The first child, after forking the jailed process: passes signals on,
// waits, and ends as it ended (exit code, or the same signal).
[[noreturn]] void wait_and_pass_through(pid_t child) {
  jailed_pid = child;
  struct sigaction sa {};
  sa.sa_sigaction = forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  ::sigemptyset(&sa.sa_mask);
  for (const int sig : kForwarded) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGCHLD, SIG_DFL);  // SIG_IGN would reap the child before waitpid
  const sigset_t set = forwarded_set();
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);

  int status = 0;
  while (::waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) ::_exit(127);
  }
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
  const int sig = WTERMSIG(status);
  const struct rlimit no_core {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // the jailed process's crash is not ours to dump
  ::signal(sig, SIG_DFL);
  sigset_t only;
  ::sigemptyset(&only);
  ::sigaddset(&only, sig);
  ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

// The jailed process, PID 1 of its namespaces.
Result<Forked> in_jailed_process(const JailSpec& spec, UniqueFd first_child) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail_errno("prctl(PR_SET_PDEATHSIG)");
  // Its parent is outside its PID namespace (getppid() is 0): whether the
  // parent died before the line above is asked of the parent's pidfd.
  if (first_child) {
    struct pollfd p {first_child.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) return fail("the jail's first process ended before the jail was set up");
    first_child.reset();
  }
  HUSK_TRY(enter_root(spec));
  if (::sethostname(kHostname, sizeof(kHostname) - 1) != 0) return fail_errno("sethostname");
  return Forked{0, true};
}

// The first child keeps none of the caller's descriptors once the jailed
// process has its copies: one it held would keep a pipe's end open after
// the caller and the jailed process closed theirs (no EOF). 0 to 2 stay.
void close_inherited_fds() {
  if (::close_range(3, ~0U, 0) == 0) return;
  struct rlimit open_files {};
  ::getrlimit(RLIMIT_NOFILE, &open_files);
  const rlim_t top = std::min<rlim_t>(open_files.rlim_cur, 1 << 16);
  for (rlim_t fd = 3; fd < top; ++fd) ::close(static_cast<int>(fd));
}

// The first child: returns only errors (before the jailed process exists).
Result<Forked> in_first_child(const JailSpec& spec, pid_t husk, const std::string& cgroup_path) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail_errno("prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != husk) return fail(fmt::format("husk (pid {}) ended before its jail was set up", husk));
  // Into the cgroup before unshare(CLONE_NEWCGROUP), which makes it the
  // jail's cgroup root.
  if (!cgroup_path.empty()) HUSK_TRY(cgroup::join(cgroup_path));
  if (spec.user_namespace) {
    const char* step = "";
    if (const int err = enter_user_namespace(spec, step); err != 0) return fail_errno(step, err);
  }
  // pivot_root moves the root and cwd of every process of the namespace
  // that uses the old root, this one too: it then holds no host folder.
  if (::chdir("/") != 0) return fail_errno("chdir /");
  if (::unshare(kJailNamespaces) != 0) return fail_errno("unshare the jail's namespaces");
  // Without pidfds (Linux < 5.3) the jailed process cannot tell whether
  // this one died before it set its parent-death signal; the cgroup sweep
  // is then the only net.
  UniqueFd self(static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)));
  const sigset_t set = forwarded_set();
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &set, &old);  // until the handlers that pass them on are set
  const pid_t child = ::fork();
  if (child < 0) return fail_errno("fork the jailed process");
  if (child == 0) {
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    return in_jailed_process(spec, std::move(self));
  }
  self.reset();
  close_inherited_fds();
  wait_and_pass_through(child);
}

// Writes `text` to `path` in one write(); returns 0 or the errno.
int write_proc(const char* path, const char* text, size_t size) {
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, text, size);
  const int err = n == static_cast<ssize_t>(size) ? 0 : (n < 0 ? errno : EIO);
  ::close(fd);
  return err;
}

}  // namespace

int enter_user_namespace(const JailSpec& spec, const char*& step) {
  const unsigned long outer_uid = ::geteuid();
  const unsigned long outer_gid = ::getegid();
  // A process that is not dumpable (one that changed its uid, say) has a
  // /proc/self owned by root, and could not write its own maps.
  step = "prctl(PR_SET_DUMPABLE, 1)";
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1 && ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return errno;
  step = "unshare(CLONE_NEWUSER)";
  if (::unshare(CLONE_NEWUSER) != 0) return errno;
  // No std::string or fmt here: this runs in children of threaded processes.
  char map[64];
  step = "/proc/self/setgroups";
  if (const int err = write_proc(step, "deny", 4); err != 0) return err;
  step = "/proc/self/uid_map";
  int n = std::snprintf(map, sizeof(map), "%lu %lu 1\n", static_cast<unsigned long>(spec.uid), outer_uid);
  if (const int err = write_proc(step, map, static_cast<size_t>(n)); err != 0) return err;
  step = "/proc/self/gid_map";
  n = std::snprintf(map, sizeof(map), "%lu %lu 1\n", static_cast<unsigned long>(spec.gid), outer_gid);
  return write_proc(step, map, static_cast<size_t>(n));
}

Result<Forked> fork_jailed(const JailSpec& spec, WithCgroup with_cgroup) {
  HUSK_TRY(prepare_root(spec));
  std::string cgroup_path;
  if (with_cgroup == WithCgroup::kYes) {
    auto made = cgroup::create(spec.cgroup, spec.user_namespace);
    if (!made) {
      // Say what the host lacks rather than which file was missing.
      const auto missing = cgroup::problems(spec.user_namespace);
      if (!missing.empty()) return fail("jail cgroup: " + missing.front());
      return wrap("jail cgroup", made.error());
    }
    cgroup_path = std::move(*made);
  }
  const pid_t husk = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    if (!cgroup_path.empty()) cgroup::remove(cgroup_path);
    return fail_errno("fork the jail", err);
  }
  if (pid > 0) {
    if (!cgroup_path.empty()) cgroup::remember(pid, cgroup_path);
    return Forked{pid, false};
  }
  return in_first_child(spec, husk, cgroup_path);
}

Result<Forked> fork_into_jail(const JailSpec& spec) { return fork_jailed(spec, WithCgroup::kYes); }

void remove_cgroup(pid_t pid) {
  if (auto path = cgroup::forget(pid)) cgroup::remove(*path);
}

}  // namespace husk::jail
