// A thread the system will not give is an error value, not an exception
// that ends husk: tried for real under a process limit, in a child.
#include "runtime/common/joining_thread.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/job/watchdog.h"


namespace {

// Runs `body` in a forked child whose user may have only one process (so
// no new thread), and returns the child's exit status.
template <typename F>
int in_child_without_threads(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    // root ignores RLIMIT_NPROC: become nobody, who owns only this process.
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(90);
    const rlimit one{1, 1};
    if (::setrlimit(RLIMIT_NPROC, &one) != 0) ::_exit(91);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("JoiningThread::start runs the function on a thread of its own", "[unit]") {
  std::atomic<bool> ran{false};
  auto thread = husk::JoiningThread::start("test", [&] { ran = true; });
  REQUIRE(thread);
  thread->join();
  CHECK(ran);
}

TEST_CASE("a thread the system refuses is an error value, not a terminate", "[unit]") {
  CHECK(in_child_without_threads([] {
          auto thread = husk::JoiningThread::start("vCPU", [] {});
          if (thread) return 1;
          return thread.error().message.find("cannot start the vCPU thread") != std::string::npos ? 0 : 2;
        }) == 0);
  CHECK(in_child_without_threads([] {
          auto dog = husk::job::Watchdog::start(husk::job::Watchdog::Clock::now(), [] {});
          return dog ? 1 : 0;
        }) == 0);
}
