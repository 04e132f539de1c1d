// spawn_process with real children (/bin/sh, /bin/cat, /bin/readlink,
// /bin/sleep): output capture, stdin, signal state, descriptors and the
// process group.
#include "runtime/common/spawn.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"

namespace husk {
namespace {

struct Finished {
  int status = -1;
  std::string output;
};

// Runs argv with its stdout and stderr into a pipe; returns what it wrote and
// its wait status.
Finished run(const std::vector<std::string>& argv, SpawnOptions options = {}) {
  int fds[2] = {-1, -1};
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  options.output_fd = write_end.get();
  Result<pid_t> pid = spawn_process(argv, options);
  REQUIRE(pid.has_value());
  write_end.reset();
  Finished done;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(read_end.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) done.output.append(buf, static_cast<size_t>(n));
  }
  REQUIRE(::waitpid(*pid, &done.status, 0) == *pid);
  return done;
}

// The value of a "Name:\tvalue" line of /proc/<pid>/status text.
std::string status_field(const std::string& status, const std::string& name) {
  std::istringstream lines(status);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + ":", 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", name.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "<missing " + name + ">";
}

// Blocks a signal in this thread for the scope (the child inherits the
// calling thread's mask unless spawn_process resets it).
class BlockedSignal {
 public:
  explicit BlockedSignal(int sig) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &set, &old_) == 0);
  }
  ~BlockedSignal() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockedSignal(const BlockedSignal&) = delete;
  BlockedSignal& operator=(const BlockedSignal&) = delete;

 private:
  sigset_t old_{};
};

// Ignores a signal process-wide for the scope (SIG_IGN survives exec).
class IgnoredSignal {
 public:
  explicit IgnoredSignal(int sig) : sig_(sig) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    REQUIRE(::sigaction(sig_, &ignore, &old_) == 0);
  }
  ~IgnoredSignal() { ::sigaction(sig_, &old_, nullptr); }
  IgnoredSignal(const IgnoredSignal&) = delete;
  IgnoredSignal& operator=(const IgnoredSignal&) = delete;

 private:
  int sig_ = 0;
  struct sigaction old_ {};
};

// The bit of a signal in /proc/<pid>/status's 64-bit hex masks.
bool mask_has(const std::string& hex_mask, int sig) {
  const unsigned long long mask = std::stoull(hex_mask, nullptr, 16);
  return ((mask >> (sig - 1)) & 1U) != 0;
}

TEST_CASE("spawn_process: stdout and stderr go to output_fd, stdin is /dev/null", "[spawn]") {
  const Finished both = run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  REQUIRE(WIFEXITED(both.status));
  CHECK(WEXITSTATUS(both.status) == 3);
  CHECK(both.output == "out\nerr\n");

  const Finished stdin_target = run({"/bin/readlink", "/proc/self/fd/0"});
  CHECK(stdin_target.output == "/dev/null\n");

  // Without output_fd, both go to /dev/null rather than to the caller's.
  Result<pid_t> quiet = spawn_process(
      {"/bin/sh", "-c", "[ \"$(readlink /proc/$$/fd/1)$(readlink /proc/$$/fd/2)\" = /dev/null/dev/null ]"}, {});
  REQUIRE(quiet.has_value());
  int status = -1;
  REQUIRE(::waitpid(*quiet, &status, 0) == *quiet);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("spawn_process: signals blocked or ignored in the parent are default and unblocked in the child", "[spawn]") {
  BlockedSignal blocked(SIGUSR1);
  IgnoredSignal ignored(SIGUSR2);
  IgnoredSignal ignored_pipe(SIGPIPE);

  const Finished child = run({"/bin/cat", "/proc/self/status"});
  REQUIRE(WIFEXITED(child.status));
  CHECK_FALSE(mask_has(status_field(child.output, "SigBlk"), SIGUSR1));
  CHECK_FALSE(mask_has(status_field(child.output, "SigIgn"), SIGUSR2));
  CHECK_FALSE(mask_has(status_field(child.output, "SigIgn"), SIGPIPE));
  CHECK(std::stoull(status_field(child.output, "SigBlk"), nullptr, 16) == 0);
  // glibc's own signals 32 and 33 (thread cancel, setxid) cannot be put in a
  // sigset, and its posix_spawn sets them to SIG_IGN in the child before exec.
  constexpr unsigned long long kGlibcInternal = 3ULL << 31;
  CHECK((std::stoull(status_field(child.output, "SigIgn"), nullptr, 16) & ~kGlibcInternal) == 0);

  // The calling thread really had them blocked and ignored, so the zeros
  // above are spawn_process's doing, not inherited defaults.
  UniqueFd self_status(::open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC));
  REQUIRE(self_status);
  std::string mine(8192, '\0');
  const ssize_t n = ::read(self_status.get(), mine.data(), mine.size());
  REQUIRE(n > 0);
  mine.resize(static_cast<size_t>(n));
  CHECK(mask_has(status_field(mine, "SigBlk"), SIGUSR1));
  CHECK(mask_has(status_field(mine, "SigIgn"), SIGUSR2));
}

TEST_CASE("spawn_process: extra fds land on their targets, all others are closed", "[spawn]") {
  char name[] = "/tmp/husk-spawn-test-XXXXXX";
  UniqueFd file(::mkstemp(name));
  REQUIRE(file);
  ::unlink(name);
  REQUIRE(::write(file.get(), "mapped\n", 7) == 7);
  UniqueFd reader(::open(("/proc/self/fd/" + std::to_string(file.get())).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(reader);

  // Inherited descriptors without close-on-exec, one below the target (the
  // gap the closefrom does not reach) and one above it: neither may reach
  // the child.
  constexpr int kGap = 7;
  constexpr int kTarget = 9;
  REQUIRE(::fcntl(kGap, F_GETFD) == -1);
  REQUIRE(::dup2(reader.get(), kGap) == kGap);
  UniqueFd gap(kGap);
  UniqueFd high(::fcntl(reader.get(), F_DUPFD, 20));
  REQUIRE(high);
  REQUIRE((::fcntl(high.get(), F_GETFD) & FD_CLOEXEC) == 0);

  SpawnOptions options;
  options.extra_fds = {FdMapping{.source = reader.get(), .target = kTarget}};
  // `[` is a dash builtin, so /proc/self is the shell itself.
  const Finished done = run({"/bin/sh", "-c",
                             "fd=3; while [ $fd -le 40 ]; do "
                             "[ -e /proc/self/fd/$fd ] && echo open $fd; fd=$((fd + 1)); done; cat <&9"},
                            options);
  REQUIRE(WIFEXITED(done.status));
  CHECK(done.output == "open 9\nmapped\n");
  // The caller's descriptors are as they were.
  CHECK(::fcntl(reader.get(), F_GETFD) == FD_CLOEXEC);
  CHECK(::fcntl(high.get(), F_GETFD) == 0);
}

TEST_CASE("spawn_process: a source fd that is another mapping's target", "[spawn]") {
  // Two pipes' write ends swapped onto each other's numbers: done in order
  // in the child without copies, the first dup2 would clobber the second's
  // source.
  int a[2] = {-1, -1};
  int b[2] = {-1, -1};
  REQUIRE(::pipe2(a, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(b, O_CLOEXEC) == 0);
  UniqueFd a_read(a[0]), a_write(a[1]), b_read(b[0]), b_write(b[1]);
  SpawnOptions options;
  options.extra_fds = {FdMapping{.source = a_write.get(), .target = b_write.get()},
                       FdMapping{.source = b_write.get(), .target = a_write.get()}};
  const std::string script = "echo to-a >&" + std::to_string(b_write.get()) + "; echo to-b >&" +
                             std::to_string(a_write.get());
  const Finished done = run({"/bin/sh", "-c", script}, options);
  REQUIRE(WIFEXITED(done.status));
  CHECK(WEXITSTATUS(done.status) == 0);
  a_write.reset();
  b_write.reset();
  char buf[64] = {};
  CHECK(::read(a_read.get(), buf, sizeof buf) == 5);
  CHECK(std::string(buf) == "to-a\n");
  char buf_b[64] = {};
  CHECK(::read(b_read.get(), buf_b, sizeof buf_b) == 5);
  CHECK(std::string(buf_b) == "to-b\n");
}

TEST_CASE("spawn_process: process group", "[spawn]") {
  SECTION("its own group when asked") {
    SpawnOptions options;
    options.new_process_group = true;
    Result<pid_t> pid = spawn_process({"/bin/sleep", "10"}, options);
    REQUIRE(pid.has_value());
    CHECK(::getpgid(*pid) == *pid);
    ::kill(*pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(*pid, &status, 0) == *pid);
  }
  SECTION("the caller's group otherwise") {
    Result<pid_t> pid = spawn_process({"/bin/sleep", "10"}, {});
    REQUIRE(pid.has_value());
    CHECK(::getpgid(*pid) == ::getpgrp());
    ::kill(*pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(*pid, &status, 0) == *pid);
  }
}

TEST_CASE("spawn_process: errors", "[spawn]") {
  Result<pid_t> missing = spawn_process({"/nonexistent/husk-no-such-program", "x"}, {});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == ENOENT);
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/husk-no-such-program"));

  CHECK_FALSE(spawn_process({}, {}).has_value());

  SpawnOptions onto_stdout;
  onto_stdout.extra_fds = {FdMapping{.source = 0, .target = 1}};
  CHECK_FALSE(spawn_process({"/bin/true"}, onto_stdout).has_value());

  SpawnOptions twice;
  twice.extra_fds = {FdMapping{.source = 0, .target = 7}, FdMapping{.source = 1, .target = 7}};
  CHECK_FALSE(spawn_process({"/bin/true"}, twice).has_value());

  SpawnOptions bad_source;
  bad_source.extra_fds = {FdMapping{.source = 999999, .target = 3}};
  Result<pid_t> bad = spawn_process({"/bin/true"}, bad_source);
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == EBADF);
}

}  // namespace
}  // namespace husk
