// AgentClient against the real husk-agent on a Unix socket: Exec requests
// larger than one frame (split into ExecArgs parts on the way and put back
// together by the agent), the refusal of one past the bound before anything
// is sent, and the per-job rlimits open_files and file_size.
#include <signal.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "guest-agent/protocol/exec_args.h"
#include "tests/unit/agent/agent_fixture.h"

namespace husk::agent::test {
namespace {

TEST_CASE("agent: 100000 arguments and a large environment arrive whole", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  ExecRequest req = command({"sh", "-c", "echo $#; echo \"$1 ${100000}\"; echo ${#BIG}; env | grep -c '^V'", "sh"});
  for (int i = 1; i <= 100000; ++i) req.argv.push_back(std::to_string(i));
  for (int i = 0; i < 1000; ++i) req.env.push_back("V" + std::to_string(i) + "=" + std::string(100, 'v'));
  req.env.push_back("BIG=" + std::string(100000, 'b'));
  Captured cap;
  auto r = client.exec(req, cap.callbacks());
  REQUIRE(r);
  REQUIRE(r->started);
  INFO(cap.err);
  CHECK(r->exit.exit_code == 0);
  CHECK(cap.out == "100000\n1 100000\n100000\n1000\n");

  // The connection is still in step: a small request after the large one.
  Captured after;
  r = client.exec(command({"echo", "next"}), after.callbacks());
  REQUIRE(r);
  CHECK(after.out == "next\n");
}

TEST_CASE("agent: argv past the bound is refused before anything is sent", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  ExecRequest req = command({"true"});
  // 9 x 1 MiB: over kMaxExecArgBytes as counted by exec_arg_bytes.
  for (int i = 0; i < 9; ++i) req.argv.push_back(std::string(1u << 20, 'a'));
  auto r = client.exec(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == E2BIG);
  CHECK(r.error().message.find("at most 8388608") != std::string::npos);

  // One string too long for a part is refused the same way.
  req = command({"echo", std::string(proto::kMaxExecArgString + 1, 'x')});
  for (int i = 0; i < 5; ++i) req.argv.push_back(std::string(proto::kMaxExecArgString, 'y'));
  r = client.exec(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == E2BIG);
  CHECK(r.error().message.find("argument 1 is") != std::string::npos);

  // Nothing reached the agent: the connection still works.
  Captured cap;
  r = client.exec(command({"echo", "ok"}), cap.callbacks());
  REQUIRE(r);
  CHECK(cap.out == "ok\n");
}

TEST_CASE("agent: open_files and file_size limit the job", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();

  ExecRequest req = command({"sh", "-c", "ulimit -n; ulimit -Hn"});
  req.limits.open_files = 37;
  Captured nofile;
  auto r = client.exec(req, nofile.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  CHECK(nofile.out == "37\n37\n");

  // A write past file_size: SIGXFSZ, reported as the signal.
  req = command({"sh", "-c", "exec head -c 100000 /dev/zero > \"$0\"/f", agent.dir().path().string()});
  req.limits.file_size = 4096;
  r = client.exec(req);
  REQUIRE(r);
  CHECK(r->exit.signal == SIGXFSZ);
  CHECK(r->exit.reason == proto::ExitReason::kNormal);

  // Within the limit nothing happens.
  req.limits.file_size = 1u << 20;
  r = client.exec(req);
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);

  // A value the kernel refuses fails the start at the rlimit stage.
  req = command({"true"});
  req.limits.open_files = uint64_t{1} << 40;  // above fs.nr_open
  r = client.exec(req);
  REQUIRE(r);
  CHECK_FALSE(r->started);
  CHECK(r->failure.stage == proto::ExecStage::kRlimit);
}

}  // namespace
}  // namespace husk::agent::test
