// The test harness's own time limit: run_process must return by its limit
// whatever the child does, so one stuck test cannot hang a whole tier.
#include "tests/support/subprocess.h"

#include <csignal>

#include <catch2/catch.hpp>

using husk::test::run_process;

TEST_CASE("run_process returns output and the exit code", "[unit][support]") {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK(r.exit_code == 3);
  CHECK_FALSE(r.timed_out);
}

TEST_CASE("run_process kills a child that outlives its limit", "[unit][support]") {
  SECTION("while it still holds its output open") {
    auto r = run_process({"sleep", "30"}, 0.5);
    CHECK(r.timed_out);
    CHECK(r.signal == SIGKILL);
    CHECK(r.seconds < 10);
  }
  SECTION("after it closed its output (the pipes say nothing)") {
    auto r = run_process({"sh", "-c", "exec >&- 2>&-; sleep 30"}, 0.5);
    CHECK(r.timed_out);
    CHECK(r.seconds < 10);
    CHECK_FALSE(r.unreaped);
  }
}
