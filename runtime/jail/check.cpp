// check (jail.h; docs/jail.md, "what check() reports"): whether this host
// can jail, tried for real in a throw-away child (namespaces, pivot_root, a
// user namespace when husk is not root) plus the cgroup v2 checks, with
// every missing piece named in one message.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/unique_fd.h"
#include "runtime/jail/cgroup.h"
#include "runtime/jail/jail.h"
#include "runtime/jail/namespaces.h"
#include "runtime/jail/sys_files.h"

namespace husk::jail {

namespace {

// What the trial child reports through its pipe when a step fails.
struct TrialFailure {
  int err = 0;
  char step[64] = {};
};

// In the trial child (only system calls): the jail's namespaces and a
// pivot_root into a tmpfs, all private to the child. Returns 0 or an errno
// with `step` set.
int trial(const JailSpec& spec, const char*& step) {
  if (spec.user_namespace) {
    if (const int err = enter_user_namespace(spec, step); err != 0) return err;
  }
  step = "unshare(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS|CLONE_NEWCGROUP)";
  if (::unshare(kJailNamespaces) != 0) return errno;
  step = "make / private";
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
  // Any folder will do as a mount point in this private namespace.
  const char* dir = ::access("/tmp", F_OK) == 0 ? "/tmp" : "/";
  step = "mount a tmpfs to pivot into";
  if (::mount("husk-check", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") != 0) return errno;
  step = "chdir into the tmpfs";
  if (::chdir(dir) != 0) return errno;
  step = "pivot_root";
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return errno;
  step = "detach the old root";
  if (::umount2(".", MNT_DETACH) != 0) return errno;
  return 0;
}

// Runs trial() in a child; returns "" or what failed.
std::string try_namespaces(const JailSpec& spec) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fmt::format("pipe: {}", std::strerror(errno));
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return fmt::format("fork: {}", std::strerror(errno));
  if (pid == 0) {
    const char* step = "";
    const int err = trial(spec, step);
    if (err != 0) {
      TrialFailure failure{err, {}};
      std::strncpy(failure.step, step, sizeof(failure.step) - 1);
      [[maybe_unused]] const ssize_t n = ::write(write_end.get(), &failure, sizeof(failure));
    }
    ::_exit(err == 0 ? 0 : 1);
  }
  write_end.reset();
  TrialFailure failure;
  ssize_t n = 0;
  do {
    n = ::read(read_end.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    failure.step[sizeof(failure.step) - 1] = '\0';
    std::string what = fmt::format("{}: {}", failure.step, std::strerror(failure.err));
    if (failure.err == EPERM && std::string_view(failure.step) == "unshare(CLONE_NEWUSER)") {
      what += "; the kernel refuses unprivileged user namespaces to this process: a sysctl, a container's "
              "seccomp filter or AppArmor policy, or a chroot (the kernel refuses them to a chrooted process)";
    }
    return what;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "the trial process failed";
  return "";
}

// "0" in a sysctl that exists.
bool sysctl_is(const char* path, const char* value) {
  auto text = read_small_file(path);
  return text && text->substr(0, text->find_first_of(" \n")) == value;
}

void check_user_namespaces(std::vector<std::string>& problems) {
  if (sysctl_is("/proc/sys/kernel/unprivileged_userns_clone", "0")) {
    problems.emplace_back("unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)");
  }
  if (sysctl_is("/proc/sys/user/max_user_namespaces", "0")) {
    problems.emplace_back("user namespaces are disabled (sysctl user.max_user_namespaces=0)");
  }
  if (sysctl_is("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")) {
    problems.emplace_back(
        "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)");
  }
}

}  // namespace

Result<void> check(JailSpec& spec) {
  spec.user_namespace = ::geteuid() != 0;
  if (spec.user_namespace) {
    // Only the caller's own ids exist in its user namespace.
    spec.uid = ::geteuid();
    spec.gid = ::getegid();
  }
  std::vector<std::string> problems;
  std::vector<const char*> kinds{"mnt", "pid", "net", "ipc", "uts", "cgroup"};
  if (spec.user_namespace) kinds.push_back("user");
  for (const char* ns : kinds) {
    const std::string path = fmt::format("/proc/self/ns/{}", ns);
    if (::access(path.c_str(), F_OK) != 0) {
      problems.push_back(fmt::format("the kernel has no {} namespaces ({} is missing)", ns, path));
    }
  }
  if (spec.user_namespace) check_user_namespaces(problems);
  if (problems.empty()) {
    if (std::string failed = try_namespaces(spec); !failed.empty()) {
      problems.push_back(fmt::format("the jail's namespaces cannot be set up{} ({})",
                                     spec.user_namespace ? fmt::format(" by uid {}", spec.uid) : "", failed));
    }
  }
  for (std::string& p : cgroup::problems(spec.user_namespace)) problems.push_back(std::move(p));
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    return fail(fmt::format("the jail cannot run here: {}. Fix that, or run husk with --no-jail", all));
  }
  if (spec.user_namespace) {
    spdlog::debug("jail: unprivileged: a user namespace where only uid {} and gid {} exist (mapped to themselves)",
                  spec.uid, spec.gid);
  }
  return {};
}

}  // namespace husk::jail
