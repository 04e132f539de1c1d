// How the pid that fork_into_jail returns behaves for its parent: it ends
// the way the jailed process ended (exit code; the same signal), and
// passes on the signals a process sends it. The jailed process is PID 1 of
// its namespace: a signal it has no handler for is not delivered to it
// (pid_namespaces(7)), except SIGKILL from outside.
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/kvm/jail/jail_harness.h"

using namespace husk;
using namespace husk::test;

namespace {

int term_pipe = -1;
void on_term(int) {
  const char line[] = "got_term=1\n";
  [[maybe_unused]] const ssize_t n = ::write(term_pipe, line, sizeof(line) - 1);
  ::_exit(7);
}

enum class Body { kExit42, kTermHandler, kPause };

struct Jailed {
  JailFolder folder;
  pid_t pid = 0;        // the first child's
  pid_t jailed = 0;     // the jailed process's, as the host sees it
  ReportPipe pipe;
  Report report;
};

// Starts a jail running `body`; returns once it reported "ready".
void start(Jailed& j, Body body) {
  REQUIRE(j.folder.dir);
  jail::JailSpec spec = j.folder.spec;
  spec.binds.clear();
  const bool cgroup = cgroup_variant().available;
  const pid_t self = ::getpid();
  auto forked = jail::fork_jailed(spec, cgroup ? jail::WithCgroup::kYes : jail::WithCgroup::kNo);
  if (::getpid() != self) {
    const Reporter r(j.pipe.write_end.get());
    if (!forked) {
      r.put("setup_error", forked.error().message);
      ::_exit(70);
    }
    if (body == Body::kExit42) ::_exit(42);
    // The child inherited Catch2's handlers: a VMM with its own, or none.
    term_pipe = j.pipe.write_end.get();
    ::signal(SIGTERM, body == Body::kTermHandler ? on_term : SIG_DFL);
    r.put("ready", "1");
    for (;;) ::pause();
  }
  REQUIRE(forked);
  REQUIRE(forked->pid > 0);
  j.pid = forked->pid;
  j.pipe.write_end.reset();
  if (body != Body::kExit42) {
    j.report = read_report(j.pipe.read_end.get(), 30, "ready");
    REQUIRE(j.report.get("ready") == "1");
    for (const pid_t child : children_of(j.pid)) j.jailed = child;
    REQUIRE(j.jailed > 0);
  }
}

int finish(Jailed& j) {
  const int status = wait_for_exit(j.pid, 10);
  if (status == -1) ::kill(j.pid, SIGKILL), ::waitpid(j.pid, nullptr, 0);
  jail::remove_cgroup(j.pid);
  read_report_into(j.report, j.pipe.read_end.get(), 5);
  return status;
}

}  // namespace

TEST_CASE("the jail's pid ends as the jailed process ended, and passes signals on", "[jail]") {
  REQUIRE(::geteuid() == 0);
  Jailed j;
  SECTION("an exit code") {
    start(j, Body::kExit42);
    CHECK(describe_status(finish(j)) == "exit 42");
  }
  SECTION("SIGTERM sent to the pid reaches the jailed process's handler") {
    start(j, Body::kTermHandler);
    REQUIRE(::kill(j.pid, SIGTERM) == 0);
    CHECK(describe_status(finish(j)) == "exit 7");
    CHECK(j.report.get("got_term") == "1");
  }
  SECTION("SIGTERM without a handler is not delivered to PID 1; SIGKILL of the jailed process is the pid's") {
    start(j, Body::kPause);
    REQUIRE(::kill(j.pid, SIGTERM) == 0);
    CHECK(wait_for_exit(j.pid, 0.3) == -1);
    REQUIRE(::kill(j.jailed, SIGKILL) == 0);
    CHECK(describe_status(finish(j)) == "killed by KILL");
  }
  CHECK(j.report.get("setup_error") == "<missing>");
}
