// AgentClient against the real husk-agent on a Unix socket (no VM, no
// cgroups): jobs, stdin, large output under credit, exit codes and signals,
// the wall deadline on a process tree, files, stat, start-up failures and
// protocol errors. The cgroup limits (memory, pids, CPU time) and the PID 1
// duties are exercised by the e2e tier in the real guest.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/unit/agent/agent_fixture.h"

namespace husk::agent::test {
namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ uint8_t(c)) * 1099511628211ull;
  return h;
}

bool process_gone(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_CASE("agent: echo, exit codes and stderr apart", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();

  Captured cap;
  auto r = client.exec(command({"echo", "hello", "world"}), cap.callbacks());
  REQUIRE(r);
  CHECK(r->started);
  CHECK(r->pid > 0);
  CHECK(r->exit.exit_code == 0);
  CHECK(r->exit.signal == 0);
  CHECK(r->exit.reason == proto::ExitReason::kNormal);
  CHECK(cap.out == "hello world\n");
  CHECK(cap.err.empty());

  Captured split;
  r = client.exec(command({"sh", "-c", "echo out; echo err >&2; echo out2"}), split.callbacks());
  REQUIRE(r);
  CHECK(split.out == "out\nout2\n");
  CHECK(split.err == "err\n");
  CHECK(r->stdout_bytes == 9);
  CHECK(r->stderr_bytes == 4);

  for (int code : {0, 1, 42, 128, 255}) {
    r = client.exec(command({"sh", "-c", "exit " + std::to_string(code)}));
    REQUIRE(r);
    CHECK(r->exit.exit_code == code);
    CHECK(r->exit.signal == 0);
  }
  r = client.exec(command({"sh", "-c", "kill -SEGV $$"}));
  REQUIRE(r);
  CHECK(r->exit.exit_code == -1);
  CHECK(r->exit.signal == SIGSEGV);
}

TEST_CASE("agent: environment, cwd and a PTY", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  Captured cap;
  ExecRequest req = command({"sh", "-c", "echo $FOO; pwd"});
  req.env.push_back("FOO=bar baz");
  req.cwd = agent.dir().path().string();
  auto r = client.exec(req, cap.callbacks());
  REQUIRE(r);
  CHECK(cap.out == "bar baz\n" + agent.dir().path().string() + "\n");

  Captured tty;
  req = command({"sh", "-c", "tty; stty size"});
  req.pty = true;
  req.rows = 33;
  req.cols = 101;
  r = client.exec(req, tty.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  CHECK(tty.out.rfind("/dev/pts/", 0) == 0);
  CHECK(tty.out.find("33 101") != std::string::npos);
}

TEST_CASE("agent: stdin as data and as a stream", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();

  Captured small;
  ExecRequest req = command({"cat"});
  req.stdin_mode = proto::StdinMode::kData;
  req.stdin_data = "line one\nline two\n";
  auto r = client.exec(req, small.callbacks());
  REQUIRE(r);
  CHECK(small.out == req.stdin_data);

  // 3 MiB both ways at once: stdin under the agent's credit, stdout under ours.
  Captured big;
  req.stdin_mode = proto::StdinMode::kStream;
  req.stdin_data = random_bytes(3u << 20, 1);
  r = client.exec(req, big.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  REQUIRE(big.out.size() == req.stdin_data.size());
  CHECK(fnv1a(big.out) == fnv1a(req.stdin_data));

  // Large "data" stdin is streamed by the client transparently.
  Captured counted;
  req = command({"wc", "-c"});
  req.stdin_mode = proto::StdinMode::kData;
  req.stdin_data = std::string(2u << 20, 'z');
  r = client.exec(req, counted.callbacks());
  REQUIRE(r);
  CHECK(counted.out.find(std::to_string(2u << 20)) != std::string::npos);

  // A job that never reads stdin must not stall the stream.
  req = command({"true"});
  req.stdin_mode = proto::StdinMode::kStream;
  req.stdin_data = std::string(1u << 20, 'q');
  r = client.exec(req);
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
}

TEST_CASE("agent: 8 MiB of stdout arrives complete and in order", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  const std::string data = random_bytes(8u << 20, 2);
  REQUIRE(client.write_file(agent.dir().file("big.bin"), data));

  SECTION("fast consumer") {
    Captured cap;
    auto r = client.exec(command({"cat", agent.dir().file("big.bin")}), cap.callbacks());
    REQUIRE(r);
    CHECK(r->exit.exit_code == 0);
    REQUIRE(cap.out.size() == data.size());
    CHECK(fnv1a(cap.out) == fnv1a(data));
    CHECK(cap.out == data);
  }
  SECTION("slow consumer with a small window: the job waits, nothing is lost") {
    client.set_output_window(16 * 1024);
    std::string out;
    int chunks = 0;
    ExecCallbacks cb;
    cb.on_stdout = [&](std::string_view s) {
      out.append(s);
      if (++chunks % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    };
    auto r = client.exec(command({"cat", agent.dir().file("big.bin")}), cb);
    REQUIRE(r);
    CHECK(out == data);
  }
}

TEST_CASE("agent: the output cap truncates and kills the job", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  Captured cap;
  ExecRequest req = command({"yes"});
  req.limits.output_bytes = 100000;
  req.limits.wall_ms = 20000;
  auto r = client.exec(req, cap.callbacks());
  REQUIRE(r);
  CHECK(cap.out.size() == 100000);
  CHECK(r->exit.reason == proto::ExitReason::kOutputLimit);
  CHECK(r->exit.stdout_truncated);
  CHECK_FALSE(r->exit.stderr_truncated);
  CHECK(r->exit.signal != 0);

  // Exactly at the cap is not truncation.
  Captured exact;
  req = command({"head", "-c", "5000", "/dev/zero"});
  req.limits.output_bytes = 5000;
  r = client.exec(req, exact.callbacks());
  REQUIRE(r);
  CHECK(exact.out.size() == 5000);
  CHECK(r->exit.reason == proto::ExitReason::kNormal);
  CHECK_FALSE(r->exit.stdout_truncated);
}

TEST_CASE("agent: the wall deadline kills the whole process tree", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  const std::string pids = agent.dir().file("pids");
  // A child and a grandchild, both asleep in the background, and the leader waiting.
  ExecRequest req = command(
      {"sh", "-c", "sleep 100 & echo $! >> " + pids + "; sh -c 'sleep 100 & echo $! >> " + pids +
                       "; wait' & wait"});
  req.limits.wall_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  auto r = client.exec(req);
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(r);
  CHECK(r->exit.reason == proto::ExitReason::kWallTimeout);
  CHECK(r->exit.signal == SIGKILL);
  CHECK(r->exit.wall_us >= 300000);
  CHECK(took < std::chrono::seconds(5));
  std::ifstream in(pids);
  int count = 0;
  for (pid_t pid; in >> pid; ++count) CHECK(process_gone(pid));
  CHECK(count == 2);

  // When the leader exits on its own, what it left behind is killed too,
  // and a background process holding stdout does not hold the job open.
  const std::string bg = agent.dir().file("bg");
  r = client.exec(command({"sh", "-c", "sleep 100 & echo $! > " + bg}));
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  std::ifstream bg_in(bg);
  pid_t bg_pid = 0;
  REQUIRE(bg_in >> bg_pid);
  CHECK(process_gone(bg_pid));
}

TEST_CASE("agent: a signal from the host reaches the job", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  ExecCallbacks cb;
  cb.on_started = [&](uint32_t) { REQUIRE(client.signal_running(SIGTERM)); };
  auto r = client.exec(command({"sleep", "100"}), cb);
  REQUIRE(r);
  CHECK(r->exit.signal == SIGTERM);
  CHECK(r->exit.reason == proto::ExitReason::kNormal);
}

TEST_CASE("agent: jobs that cannot start report the stage and errno", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  auto r = client.exec(command({"/nonexistent/program"}));
  REQUIRE(r);
  CHECK_FALSE(r->started);
  CHECK(r->failure.stage == proto::ExecStage::kExec);
  CHECK(r->failure.err == ENOENT);

  r = client.exec(command({"no-such-program-anywhere"}));
  REQUIRE(r);
  CHECK(r->failure.stage == proto::ExecStage::kExec);
  CHECK(r->failure.err == ENOENT);

  ExecRequest req = command({"true"});
  req.cwd = "/nonexistent/folder";
  r = client.exec(req);
  REQUIRE(r);
  CHECK(r->failure.stage == proto::ExecStage::kChdir);
  CHECK(r->failure.err == ENOENT);

  r = client.exec(command({}));
  REQUIRE(r);
  CHECK(r->failure.stage == proto::ExecStage::kRequest);

  // Without cgroups a memory limit cannot be enforced, so it is refused.
  req = command({"true"});
  req.limits.memory_bytes = 64u << 20;
  r = client.exec(req);
  REQUIRE(r);
  CHECK(r->failure.stage == proto::ExecStage::kCgroup);
  CHECK(r->failure.err == EOPNOTSUPP);

  // The connection is still good afterwards.
  r = client.exec(command({"true"}));
  REQUIRE(r);
  CHECK(r->started);
}

TEST_CASE("agent: files go in and out intact", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  const std::string path = agent.dir().file("sub/dir/data.bin");
  const std::string data = random_bytes((3u << 20) + 12345, 3);

  auto missing_dir = client.write_file(path, data);
  REQUIRE_FALSE(missing_dir);
  CHECK(missing_dir.error().code == ENOENT);

  REQUIRE(client.write_file(path, data, 0640, /*mkdirs=*/true));
  auto st = client.stat(path);
  REQUIRE(st);
  CHECK(st->size == data.size());
  CHECK((st->mode & 07777) == 0640);
  CHECK(S_ISREG(st->mode));
  auto back = client.read_file(path, 16u << 20);
  REQUIRE(back);
  CHECK(fnv1a(*back) == fnv1a(data));
  CHECK(*back == data);

  // Replaced atomically; no temporary file is left beside it.
  REQUIRE(client.write_file(path, "short"));
  back = client.read_file(path, 100);
  REQUIRE(back);
  CHECK(*back == "short");
  Captured ls;
  REQUIRE(client.exec(command({"ls", "-A", agent.dir().file("sub/dir")}), ls.callbacks()));
  CHECK(ls.out == "data.bin\n");

  REQUIRE(client.write_file(agent.dir().file("empty"), ""));
  back = client.read_file(agent.dir().file("empty"), 10);
  REQUIRE(back);
  CHECK(back->empty());

  auto too_big = client.read_file(path, 3);
  REQUIRE_FALSE(too_big);
  CHECK(too_big.error().code == EFBIG);
  auto absent = client.read_file(agent.dir().file("absent"), 10);
  REQUIRE_FALSE(absent);
  CHECK(absent.error().code == ENOENT);
  auto dir_read = client.read_file(agent.dir().file("sub"), 10);
  REQUIRE_FALSE(dir_read);
  CHECK(dir_read.error().code == EISDIR);

  auto no_stat = client.stat(agent.dir().file("absent"));
  REQUIRE_FALSE(no_stat);
  CHECK(no_stat.error().code == ENOENT);
  auto dir_stat = client.stat(agent.dir().file("sub"));
  REQUIRE(dir_stat);
  CHECK(S_ISDIR(dir_stat->mode));

  // After all the failures the connection still serves.
  CHECK(client.stat(path));
}

}  // namespace
}  // namespace husk::agent::test
