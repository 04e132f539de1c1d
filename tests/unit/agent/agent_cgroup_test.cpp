// The agent's cgroup v2 limits (memory, pids, CPU time, the wall deadline
// through cgroup.kill). Needs a cgroup2 mount with the cpu, memory and pids
// controllers available, named by HUSK_AGENT_CGROUP_ROOT; hidden by default
// ("[.cgroup]") because development hosts may still run cgroup v1. Run:
//   tests/unit/agent/run_cgroup_tests.sh BUILD_DIR
// which mounts one inside the nested test host (tests/testhost/run).
#include <dirent.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/unit/agent/agent_fixture.h"

namespace husk::agent::test {
namespace {

std::string cgroup_root() {
  const char* root = std::getenv("HUSK_AGENT_CGROUP_ROOT");
  return root != nullptr ? root : "";
}

int job_cgroups_left(const std::string& root) {
  int count = 0;
  for (int tries = 0; tries < 200; ++tries) {
    count = 0;
    if (DIR* d = ::opendir(root.c_str())) {
      while (dirent* e = ::readdir(d)) count += std::string(e->d_name).rfind("job-", 0) == 0;
      ::closedir(d);
    }
    if (count == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return count;
}

TEST_CASE("agent: cgroup limits end jobs with the right reason", "[.cgroup][agent]") {
  const std::string root = cgroup_root();
  if (root.empty()) {
    WARN("HUSK_AGENT_CGROUP_ROOT not set: skipped");
    return;
  }
  AgentProcess agent({"--cgroup-root", root});
  AgentClient client = agent.client();
  auto hello = client.hello();
  REQUIRE(hello);
  REQUIRE((hello->features & proto::kFeatureCgroups) != 0);

  SECTION("memory exhaustion is reported as memory-limit") {
    // dd reads into one 256 MiB buffer, touching every page of it.
    ExecRequest req = command({"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"});
    req.limits.memory_bytes = 64u << 20;
    req.limits.wall_ms = 60000;
    auto r = client.exec(req);
    REQUIRE(r);
    REQUIRE(r->started);
    CHECK(r->exit.reason == proto::ExitReason::kMemoryLimit);
    CHECK(r->exit.signal == SIGKILL);
    CHECK(r->exit.peak_memory_bytes > (32u << 20));
    CHECK(r->exit.peak_memory_bytes <= (64u << 20));
  }
  SECTION("a fork past pids.max fails inside the job") {
    ExecRequest req = command({"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait"});
    req.limits.pids = 4;
    req.limits.wall_ms = 60000;
    auto r = client.exec(req);
    REQUIRE(r);
    CHECK(r->exit.pids_limit_hit);
    if (r->exit.exit_code != 0) CHECK(r->exit.reason == proto::ExitReason::kPidsLimit);
  }
  SECTION("CPU time is limited across the cgroup") {
    ExecRequest req = command({"sh", "-c", "while :; do :; done"});
    req.limits.cpu_ms = 300;
    req.limits.wall_ms = 60000;
    auto r = client.exec(req);
    REQUIRE(r);
    CHECK(r->exit.reason == proto::ExitReason::kCpuLimit);
    CHECK(r->exit.cpu_user_us + r->exit.cpu_sys_us >= 300000);
  }
  SECTION("the wall deadline also kills processes that left the session") {
    const std::string pidfile = agent.dir().file("escaped");
    ExecRequest req = command({"sh", "-c", "setsid sh -c 'echo $$ > " + pidfile + "; exec sleep 100' & wait"});
    req.limits.wall_ms = 5000;  // generous: the test host is an emulator
    auto r = client.exec(req);
    REQUIRE(r);
    CHECK(r->exit.reason == proto::ExitReason::kWallTimeout);
    std::ifstream in(pidfile);
    pid_t pid = 0;
    REQUIRE(in >> pid);
    bool gone = false;
    for (int i = 0; i < 300 && !gone; ++i) {
      gone = ::kill(pid, 0) != 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(gone);
  }
  SECTION("a normal job reports its usage") {
    auto r = client.exec(command({"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}));
    REQUIRE(r);
    CHECK(r->exit.reason == proto::ExitReason::kNormal);
    CHECK(r->exit.cpu_user_us + r->exit.cpu_sys_us > 0);
    CHECK(r->exit.peak_memory_bytes > 0);
  }
  CHECK(job_cgroups_left(root) == 0);
}

}  // namespace
}  // namespace husk::agent::test
