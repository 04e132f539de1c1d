// The agent's several host connections and Resize, against the real
// husk-agent on a Unix socket: connections that run jobs at once with their
// output kept apart, a closed connection that kills only its own jobs,
// kMaxConnections served and one more refused (and logged sparingly), job
// frames from a connection that did not start the job (same request id or
// none) acting on nothing of another's, and Resize changing what a PTY job's
// `stty size` prints and sending it SIGWINCH.
//
// The host's end is raw frames (FrameStream), not AgentClient: one thread
// drives several connections and their jobs at once, and sends job frames
// no client would (another connection's id).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "guest-agent/src/connection.h"
#include "guest-agent/src/peer.h"
#include "tests/unit/agent/agent_fixture.h"

namespace husk::agent::test {
namespace {

using Clock = std::chrono::steady_clock;

// A connected Unix socket to the agent, retried while it starts up; an
// invalid fd when it never answers.
UniqueFd connect_agent(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  for (int i = 0; i < 500; ++i) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return UniqueFd();
}

bool process_gone(pid_t pid) {
  for (int i = 0; i < 300; ++i) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// What one connection has heard about one of its jobs.
struct JobSeen {
  std::optional<uint32_t> pid;  // Started
  std::string out;
  std::string err;
  std::optional<proto::Exited> exited;
  std::optional<proto::ExecFailed> failed;
};

// One host connection speaking raw frames: Hello at construction, then Execs
// (with output credit) and job frames; pump() reads what the agent sends
// and files it by request id.
class HostConn {
 public:
  explicit HostConn(AgentProcess& agent) : stream_(connect_agent(agent.socket_path())) {
    REQUIRE(stream_.fd() >= 0);
    REQUIRE(stream_.send(1, proto::Hello{}, 5000));
    auto frame = stream_.next(10000);
    REQUIRE(frame);
    REQUIRE(frame->has_value());
    proto::Hello hello;
    REQUIRE(proto::decode(**frame, hello) == proto::Status::kOk);
    REQUIRE(hello.major == proto::kVersionMajor);
  }

  // Starts a job as request `id` with 1 MiB of credit on each stream.
  void exec(uint32_t id, const proto::Exec& e) {
    jobs[id] = JobSeen{};
    REQUIRE(stream_.send(id, e, 5000));
    for (proto::Stream s : {proto::Stream::kStdout, proto::Stream::kStderr}) {
      REQUIRE(stream_.send(id, proto::Credit{s, 1u << 20}, 5000));
    }
  }
  template <typename M>
  void send(uint32_t id, const M& msg) {
    REQUIRE(stream_.send(id, msg, 5000));
  }

  // Handles the frames that come within `ms`; false once the agent hung up.
  bool pump(int ms) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
      auto frame = stream_.next(static_cast<int>(std::max<int64_t>(left, 0)));
      if (!frame) return false;
      if (!frame->has_value()) return true;
      handle(**frame);
    }
  }
  // Pumps until `done` holds or `ms` pass; whether it holds.
  template <typename F>
  bool pump_until(F done, int ms = 20000) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (Clock::now() >= end || !pump(20)) return done();
    }
    return true;
  }
  bool wait_exited(uint32_t id, int ms = 20000) {
    return pump_until([&] { return jobs[id].exited.has_value(); }, ms);
  }
  bool wait_output(uint32_t id, const std::string& text, int ms = 20000) {
    return pump_until([&] { return jobs[id].out.find(text) != std::string::npos; }, ms);
  }

  std::map<uint32_t, JobSeen> jobs;
  std::vector<proto::Error> errors;

 private:
  void handle(const proto::FrameView& f) {
    switch (static_cast<proto::MsgType>(f.type)) {
      case proto::MsgType::kStarted: {
        proto::Started m;
        REQUIRE(proto::decode(f, m) == proto::Status::kOk);
        jobs[f.id].pid = m.pid;
        break;
      }
      case proto::MsgType::kOutput: {
        proto::Output m;
        REQUIRE(proto::decode(f, m) == proto::Status::kOk);
        (m.stream == proto::Stream::kStdout ? jobs[f.id].out : jobs[f.id].err) += m.data;
        // Keep the job's credit up, as a host that consumes at once does.
        REQUIRE(stream_.send(f.id, proto::Credit{m.stream, static_cast<uint32_t>(m.data.size())}, 5000));
        break;
      }
      case proto::MsgType::kExited: {
        proto::Exited m;
        REQUIRE(proto::decode(f, m) == proto::Status::kOk);
        jobs[f.id].exited = m;
        break;
      }
      case proto::MsgType::kExecFailed: {
        proto::ExecFailed m;
        REQUIRE(proto::decode(f, m) == proto::Status::kOk);
        jobs[f.id].failed = m;
        break;
      }
      case proto::MsgType::kError: {
        proto::Error m;
        REQUIRE(proto::decode(f, m) == proto::Status::kOk);
        errors.push_back(m);
        break;
      }
      default: break;  // stdin credit, acks
    }
  }

  FrameStream stream_;
};

proto::Exec sh(const std::string& script) {
  proto::Exec e;
  e.argv = {"/bin/sh", "-c", script};
  e.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  return e;
}

proto::Exec sh_with_stdin(const std::string& script) {
  proto::Exec e = sh(script);
  e.stdin_mode = proto::StdinMode::kStream;
  return e;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count_lines_with(const std::string& text, const std::string& what) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(what) != std::string::npos;
  return n;
}

TEST_CASE("agent: two and three connections run a job each at once, their output apart", "[unit][agent]") {
  for (int n : {2, 3}) {
    INFO(n << " connections");
    AgentProcess agent;
    const std::string barrier = agent.dir().file("barrier-" + std::to_string(n));
    std::vector<std::unique_ptr<HostConn>> conns;
    for (int k = 0; k < n; ++k) {
      conns.push_back(std::make_unique<HostConn>(agent));
      // The same request id on every connection: ids are per connection.
      // Each job waits until all n are running, so they do run at once,
      // and writes lines of its own before and after.
      const std::string me = "conn" + std::to_string(k);
      proto::Exec e = sh("mkdir -p " + barrier + "; echo " + me + "-first; touch " + barrier + "/" + me +
                         "; while [ $(ls " + barrier + " | wc -l) -lt " + std::to_string(n) +
                         " ]; do sleep 0.01; done; for i in 1 2 3; do echo " + me + "-$i; echo " + me +
                         "-err-$i >&2; sleep 0.02; done");
      e.limits.wall_ms = 20000;
      conns.back()->exec(7, e);
    }
    const auto end = Clock::now() + std::chrono::seconds(30);
    auto all_done = [&] {
      for (auto& c : conns) {
        if (!c->jobs[7].exited) return false;
      }
      return true;
    };
    while (!all_done() && Clock::now() < end) {
      for (auto& c : conns) REQUIRE(c->pump(10));
    }
    REQUIRE(all_done());
    for (int k = 0; k < n; ++k) {
      const std::string me = "conn" + std::to_string(k);
      const JobSeen& j = conns[size_t(k)]->jobs[7];
      CHECK(j.exited->exit_code == 0);
      CHECK(j.exited->reason == proto::ExitReason::kNormal);  // not the wall limit: they ran together
      CHECK(j.out == me + "-first\n" + me + "-1\n" + me + "-2\n" + me + "-3\n");
      CHECK(j.err == me + "-err-1\n" + me + "-err-2\n" + me + "-err-3\n");
      CHECK(conns[size_t(k)]->errors.empty());
    }
  }
}

TEST_CASE("agent: closing a connection kills its job; another connection's job runs on", "[unit][agent]") {
  AgentProcess agent;
  auto a = std::make_unique<HostConn>(agent);
  HostConn b(agent);
  a->exec(2, sh("exec sleep 100"));
  // B's job waits for a line on stdin, so it is certainly running when A goes.
  b.exec(2, sh_with_stdin("read x; echo got-$x"));
  REQUIRE(a->pump_until([&] { return a->jobs[2].pid.has_value(); }));
  REQUIRE(b.pump_until([&] { return b.jobs[2].pid.has_value(); }));
  const pid_t a_pid = static_cast<pid_t>(*a->jobs[2].pid);
  const pid_t b_pid = static_cast<pid_t>(*b.jobs[2].pid);
  REQUIRE(::kill(a_pid, 0) == 0);

  a.reset();  // hang up with A's job running
  CHECK(process_gone(a_pid));
  CHECK(::kill(b_pid, 0) == 0);
  b.send(2, proto::StdinData{"hello\n"});
  REQUIRE(b.wait_exited(2));
  CHECK(b.jobs[2].out == "got-hello\n");
  CHECK(b.jobs[2].exited->exit_code == 0);
  CHECK(b.jobs[2].exited->signal == 0);

  // B's connection still serves, and so does a new one.
  b.exec(3, sh("echo again"));
  REQUIRE(b.wait_exited(3));
  CHECK(b.jobs[3].out == "again\n");
  HostConn c(agent);
  c.exec(2, sh("echo new"));
  REQUIRE(c.wait_exited(2));
  CHECK(c.jobs[2].out == "new\n");
}

TEST_CASE("agent: a connection whose host does not read holds back only its own jobs", "[unit][agent]") {
  AgentProcess agent;
  auto a = std::make_unique<HostConn>(agent);
  HostConn b(agent);
  // A's job has 64 MiB of credit and far more output; A's host never reads,
  // so the socket fills and the agent's queue for A backs up.
  proto::Exec flood = sh("exec cat /dev/zero");
  a->exec(2, flood);
  a->send(2, proto::Credit{proto::Stream::kStdout, 63u << 20});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // B's jobs are served meanwhile, output and all.
  for (uint32_t id = 2; id < 5; ++id) {
    b.exec(id, sh("for i in 1 2 3; do echo b$i; done; head -c 300000 /dev/zero | tr '\\0' x"));
    REQUIRE(b.wait_exited(id, 10000));
    CHECK(b.jobs[id].exited->exit_code == 0);
    CHECK(b.jobs[id].out == "b1\nb2\nb3\n" + std::string(300000, 'x'));
  }
  CHECK_FALSE(a->jobs[2].exited.has_value());
  a.reset();
}

TEST_CASE("agent: 16 connections are served at once and a 17th is refused, logged sparingly", "[unit][agent]") {
  STATIC_REQUIRE(guest::kMaxConnections == 16);
  AgentProcess agent;
  std::vector<std::unique_ptr<HostConn>> conns;
  for (size_t k = 0; k < guest::kMaxConnections; ++k) {
    conns.push_back(std::make_unique<HostConn>(agent));
    // Each keeps a job running until told to finish.
    conns.back()->exec(1, sh_with_stdin("read x; echo conn" + std::to_string(k) + "-$x"));
  }
  for (auto& c : conns) REQUIRE(c->pump_until([&] { return c->jobs[1].pid.has_value(); }));

  // The 17th is accepted and closed at once: its Hello gets no answer.
  const size_t extra = 20;
  for (size_t i = 0; i < extra; ++i) {
    UniqueFd fd = connect_agent(agent.socket_path());
    REQUIRE(fd.valid());
    FrameStream s(std::move(fd));
    (void)s.send(1, proto::Hello{}, 1000);  // may fail: the agent may have closed already
    auto frame = s.next(10000);
    REQUIRE_FALSE(frame);  // end of stream or reset, never a frame
  }

  // All 16 are still served, each its own job's output.
  for (size_t k = 0; k < conns.size(); ++k) {
    conns[k]->send(1, proto::StdinData{"bye\n"});
    REQUIRE(conns[k]->wait_exited(1));
    CHECK(conns[k]->jobs[1].out == "conn" + std::to_string(k) + "-bye\n");
  }

  // A closed connection frees its slot.
  conns.pop_back();
  std::optional<std::string> out;
  for (int attempt = 0; attempt < 100 && !out; ++attempt) {
    UniqueFd fd = connect_agent(agent.socket_path());
    REQUIRE(fd.valid());
    FrameStream s(std::move(fd));
    if (!s.send(1, proto::Hello{}, 1000)) continue;
    auto frame = s.next(10000);
    if (!frame) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the close not yet seen
      continue;
    }
    REQUIRE(frame->has_value());
    CHECK((*frame)->type == uint16_t(proto::MsgType::kHello));
    out = "served";
  }
  CHECK(out == std::optional<std::string>("served"));

  // Refusals are logged, but not each one: the first kLoggedRefusals.
  const std::string log = read_text(agent.dir().file("agent.log"));
  INFO(log);
  CHECK(count_lines_with(log, "refused a host connection: 16 are open") == guest::kLoggedRefusals);
}

TEST_CASE("agent: job frames act only on jobs of the connection that sends them", "[unit][agent]") {
  AgentProcess agent;
  HostConn a(agent);
  HostConn b(agent);
  HostConn c(agent);
  // A and B each run a job as request 5.
  a.exec(5, sh_with_stdin("read x; echo a-$x"));
  b.exec(5, sh("exec sleep 100"));
  REQUIRE(a.pump_until([&] { return a.jobs[5].pid.has_value(); }));
  REQUIRE(b.pump_until([&] { return b.jobs[5].pid.has_value(); }));
  const pid_t a_pid = static_cast<pid_t>(*a.jobs[5].pid);

  // C has no job 5: its frames for 5 are dropped, whatever they ask.
  c.send(5, proto::Signal{SIGKILL});
  c.send(5, proto::StdinData{"intruder\n"});
  c.send(5, proto::StdinClose{});
  c.send(5, proto::Resize{1, 1});
  // B's Signal for its own 5 ends B's job, not A's.
  b.send(5, proto::Signal{SIGTERM});
  REQUIRE(b.wait_exited(5));
  CHECK(b.jobs[5].exited->signal == SIGTERM);
  // C's frames were read before B's job ended (C sent them first; one loop,
  // but sockets are read in any order), so give them time to land anyway.
  REQUIRE(c.pump(200));
  CHECK(::kill(a_pid, 0) == 0);

  a.send(5, proto::StdinData{"mine\n"});
  REQUIRE(a.wait_exited(5));
  CHECK(a.jobs[5].out == "a-mine\n");
  CHECK(a.jobs[5].exited->exit_code == 0);
  CHECK(a.jobs[5].exited->signal == 0);
  CHECK(c.jobs.empty());
  CHECK(c.errors.empty());  // job frames are never answered
}

TEST_CASE("agent: Resize sets a PTY job's terminal size, only its own connection's", "[unit][agent]") {
  AgentProcess agent;
  HostConn a(agent);
  HostConn b(agent);

  SECTION("stty size before and after") {
    proto::Exec e = sh_with_stdin("read x; stty size; read y; stty size");
    e.pty = true;
    e.rows = 24;
    e.cols = 80;
    a.exec(3, e);
    REQUIRE(a.pump_until([&] { return a.jobs[3].pid.has_value(); }));
    // Another connection's Resize with the same id changes nothing.
    b.send(3, proto::Resize{10, 10});
    REQUIRE(b.pump(100));
    a.send(3, proto::StdinData{"one\n"});
    REQUIRE(a.wait_output(3, "24 80"));
    a.send(3, proto::Resize{50, 132});
    a.send(3, proto::StdinData{"two\n"});
    REQUIRE(a.wait_exited(3));
    CHECK(a.jobs[3].exited->exit_code == 0);
    const std::string& out = a.jobs[3].out;
    INFO(out);
    CHECK(out.find("24 80") < out.find("50 132"));
    CHECK(out.find("50 132") != std::string::npos);
    CHECK(out.find("10 10") == std::string::npos);
  }

  SECTION("the job's foreground group gets SIGWINCH") {
    proto::Exec e = sh_with_stdin("trap 'echo winch; stty size; exit 3' WINCH; echo ready; "
                                  "while :; do sleep 0.02; done");
    e.pty = true;
    a.exec(4, e);
    REQUIRE(a.wait_output(4, "ready"));
    a.send(4, proto::Resize{33, 101});
    REQUIRE(a.wait_exited(4));
    CHECK(a.jobs[4].exited->exit_code == 3);
    CHECK(a.jobs[4].out.find("winch") != std::string::npos);
    CHECK(a.jobs[4].out.find("33 101") != std::string::npos);
  }

  SECTION("ignored for a job without a PTY and for an ended job") {
    a.exec(5, sh_with_stdin("read x; echo plain-$x"));
    REQUIRE(a.pump_until([&] { return a.jobs[5].pid.has_value(); }));
    a.send(5, proto::Resize{40, 40});
    a.send(5, proto::StdinData{"ok\n"});
    REQUIRE(a.wait_exited(5));
    CHECK(a.jobs[5].out == "plain-ok\n");
    CHECK(a.jobs[5].exited->exit_code == 0);
    a.send(5, proto::Resize{40, 40});   // ended
    a.send(99, proto::Resize{40, 40});  // never was
    a.exec(6, sh("echo still"));
    REQUIRE(a.wait_exited(6));
    CHECK(a.jobs[6].out == "still\n");
    CHECK(a.errors.empty());
  }
}

}  // namespace
}  // namespace husk::agent::test
