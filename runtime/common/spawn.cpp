// spawn_process: see spawn.h.
#include "runtime/common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>

#include <algorithm>

#include <fmt/format.h>

#include "runtime/common/unique_fd.h"

extern char** environ;

namespace husk {

namespace {

// Owns the two posix_spawn objects, destroyed only once initialised.
class SpawnSetup {
 public:
  SpawnSetup() = default;
  ~SpawnSetup() {
    if (actions_ready_) ::posix_spawn_file_actions_destroy(&actions_);
    if (attr_ready_) ::posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  Result<void> init() {
    int rc = ::posix_spawn_file_actions_init(&actions_);
    if (rc != 0) return fail_errno("posix_spawn_file_actions_init", rc);
    actions_ready_ = true;
    rc = ::posix_spawnattr_init(&attr_);
    if (rc != 0) return fail_errno("posix_spawnattr_init", rc);
    attr_ready_ = true;
    return {};
  }

  posix_spawn_file_actions_t* actions() { return &actions_; }
  posix_spawnattr_t* attr() { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_{};
  posix_spawnattr_t attr_{};
  bool actions_ready_ = false;
  bool attr_ready_ = false;
};

// Copies of the sources above every target number, so that no dup2 in the
// child overwrites a source a later dup2 still needs (a pipe made while fd 1
// was closed would be fd 1, say). Close-on-exec: the child keeps only the
// dup2'ed targets, the caller loses them on return.
struct HighFds {
  UniqueFd output;
  std::vector<UniqueFd> extra{};
};

Result<HighFds> copy_high(const SpawnOptions& options, int lowest) {
  HighFds high;
  if (options.output_fd >= 0) {
    high.output.reset(::fcntl(options.output_fd, F_DUPFD_CLOEXEC, lowest));
    if (!high.output) return fail_errno(fmt::format("dup fd {} for spawn", options.output_fd));
  }
  for (const FdMapping& m : options.extra_fds) {
    UniqueFd copy(::fcntl(m.source, F_DUPFD_CLOEXEC, lowest));
    if (!copy) return fail_errno(fmt::format("dup fd {} for spawn", m.source));
    high.extra.push_back(std::move(copy));
  }
  return high;
}

Result<void> add_file_actions(posix_spawn_file_actions_t* actions, const SpawnOptions& options,
                              const HighFds& high, int close_from) {
  int rc = ::posix_spawn_file_actions_addopen(actions, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) {
    rc = high.output ? ::posix_spawn_file_actions_adddup2(actions, high.output.get(), 1)
                     : ::posix_spawn_file_actions_addopen(actions, 1, "/dev/null", O_WRONLY, 0);
  }
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(actions, 1, 2);
  for (size_t i = 0; rc == 0 && i < options.extra_fds.size(); ++i) {
    rc = ::posix_spawn_file_actions_adddup2(actions, high.extra[i].get(), options.extra_fds[i].target);
  }
  // The numbers between 2 and the highest target that are no target: an
  // inherited descriptor there would otherwise survive the closefrom.
  // Closing a descriptor that is not open is no error for glibc.
  for (int fd = 3; rc == 0 && fd < close_from; ++fd) {
    const bool mapped = std::any_of(options.extra_fds.begin(), options.extra_fds.end(),
                                    [fd](const FdMapping& m) { return m.target == fd; });
    if (!mapped) rc = ::posix_spawn_file_actions_addclose(actions, fd);
  }
  if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(actions, close_from);
  if (rc != 0) return fail_errno("posix_spawn file actions", rc);
  return {};
}

Result<void> set_attributes(posix_spawnattr_t* attr, const SpawnOptions& options) {
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&defaults, sig);
  }
  int flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  int rc = 0;
  if ((rc = ::posix_spawnattr_setsigmask(attr, &none)) != 0 ||
      (rc = ::posix_spawnattr_setsigdefault(attr, &defaults)) != 0) {
    return fail_errno("posix_spawn attributes", rc);
  }
  if (options.new_process_group) {
    if ((rc = ::posix_spawnattr_setpgroup(attr, 0)) != 0) return fail_errno("posix_spawn attributes", rc);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  if ((rc = ::posix_spawnattr_setflags(attr, static_cast<short>(flags))) != 0) return fail_errno("posix_spawn attributes", rc);
  return {};
}

}  // namespace

Result<pid_t> spawn_process(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return fail("spawn: empty argv");
  int highest_target = 2;
  for (const FdMapping& m : options.extra_fds) {
    const bool repeated = std::count_if(options.extra_fds.begin(), options.extra_fds.end(),
                                        [&m](const FdMapping& other) { return other.target == m.target; }) > 1;
    if (m.target < 3 || repeated) return fail(fmt::format("spawn {}: bad target fd {}", argv[0], m.target));
    highest_target = std::max(highest_target, m.target);
  }
  const int close_from = highest_target + 1;

  HUSK_TRY_ASSIGN(const HighFds high, copy_high(options, close_from));
  SpawnSetup setup;
  HUSK_TRY(setup.init());
  HUSK_TRY(add_file_actions(setup.actions(), options, high, close_from));
  HUSK_TRY(set_attributes(setup.attr(), options));

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), setup.actions(), setup.attr(), args.data(), environ);
  if (rc != 0) return fail_errno("spawn " + argv[0], rc);
  return pid;
}

}  // namespace husk
