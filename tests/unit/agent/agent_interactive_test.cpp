// An interactive exec (husk-oci's keeper): the job's stdin read from a live
// descriptor as it comes (ExecRequest::stdin_fd) and the caller's events
// served during the run (ExecCallbacks::event_fd, on_event), against the
// real husk-agent on a Unix socket; and against fake agents (fake_agent_peer.h)
// that grant no stdin credit or drip a frame, which must neither spin nor
// hold the caller's events.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/agent/agent_fixture.h"
#include "tests/unit/agent/fake_agent_peer.h"

namespace husk::agent::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Writes `chunks` into a descriptor from its own thread, `gap` apart, then
// closes it. The descriptor is non-blocking and each write waits in short
// polls, so the destructor can stop a writer whose reader went away
// (a failed exec) instead of joining a thread blocked for good.
class Writer {
 public:
  Writer(UniqueFd fd, std::vector<std::string> chunks, std::chrono::milliseconds gap)
      : fd_(std::move(fd)), chunks_(std::move(chunks)), gap_(gap) {
    REQUIRE(::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK) == 0);
    thread_ = std::thread([this] { run(); });
  }
  ~Writer() {
    stop_ = true;
    thread_.join();
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // When the last chunk went out (the descriptor is closed then).
  [[nodiscard]] Clock::time_point done() const { return Clock::time_point(Clock::duration(done_.load())); }

 private:
  void run() {
    // A reader that has gone is EPIPE here, not a SIGPIPE for the test.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    for (size_t i = 0; i < chunks_.size() && !stop_; ++i) {
      if (i != 0) std::this_thread::sleep_for(gap_);
      std::string_view left = chunks_[i];
      while (!left.empty() && !stop_) {
        const ssize_t n = ::write(fd_.get(), left.data(), left.size());
        if (n > 0) {
          left.remove_prefix(static_cast<size_t>(n));
        } else if (n < 0 && errno == EAGAIN) {
          pollfd p{fd_.get(), POLLOUT, 0};
          (void)::poll(&p, 1, 50);
        } else if (n < 0 && errno != EINTR) {
          return;
        }
      }
    }
    done_ = Clock::now().time_since_epoch().count();
    fd_.reset();
  }

  UniqueFd fd_;
  std::vector<std::string> chunks_;
  std::chrono::milliseconds gap_;
  std::atomic<bool> stop_{false};
  std::atomic<Clock::rep> done_{0};
  std::thread thread_;  // last: starts after the members it uses
};

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

ExecRequest live(std::vector<std::string> argv, int stdin_fd) {
  ExecRequest req = command(std::move(argv));
  req.stdin_mode = proto::StdinMode::kStream;
  req.stdin_fd = stdin_fd;
  req.limits.wall_ms = 60'000;
  return req;
}

// A timerfd that fires once after `after`.
UniqueFd timer_after(std::chrono::milliseconds after) {
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  REQUIRE(fd);
  itimerspec spec{};
  spec.it_value.tv_sec = after.count() / 1000;
  spec.it_value.tv_nsec = (after.count() % 1000) * 1'000'000;
  REQUIRE(::timerfd_settime(fd.get(), 0, &spec, nullptr) == 0);
  return fd;
}

// The CPU time this thread has used, in seconds.
double thread_cpu_s() {
  rusage u{};
  REQUIRE(::getrusage(RUSAGE_THREAD, &u) == 0);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

TEST_CASE("agent interactive: stdin from a pipe goes to the job as it comes", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  Pipe p = make_pipe();
  const auto start = Clock::now();
  Writer writer(std::move(p.write), {"one\n", "two\n", "three\n"}, 300ms);
  std::string out;
  double first_output_s = -1;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) {
    if (first_output_s < 0) first_output_s = since(start);
    out.append(d);
  };
  auto r = client.exec(live({"cat"}, p.read.get()), cb);
  REQUIRE(r);
  CHECK(r->started);
  CHECK(r->exit.exit_code == 0);
  CHECK(r->exit.signal == 0);
  CHECK(out == "one\ntwo\nthree\n");
  // The first line came back while the writer was still waiting to write
  // the next (600 ms of gaps): it was not held until end of file.
  const double writer_done_s = std::chrono::duration<double>(writer.done() - start).count();
  CHECK(first_output_s >= 0);
  CHECK(first_output_s < writer_done_s);
  CHECK(writer_done_s >= 0.5);
  CHECK(r->stdout_bytes == out.size());
  // The client is in step for the next job.
  Captured again;
  auto r2 = client.exec(command({"echo", "next"}), again.callbacks());
  REQUIRE(r2);
  CHECK(again.out == "next\n");
}

TEST_CASE("agent interactive: more stdin than the agent's credit window, through a blocking pipe",
          "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  // 5 MiB, over twice the agent's 2 MiB stdin window, in uneven pieces.
  std::mt19937 rng(7);
  std::vector<std::string> chunks;
  std::string all;
  for (size_t total = 0; total < (5u << 20);) {
    std::string c(1 + rng() % 300'000, '\0');
    for (char& ch : c) ch = static_cast<char>(rng());
    total += c.size();
    all += c;
    chunks.push_back(std::move(c));
  }
  Pipe p = make_pipe();  // the read end stays blocking: exec reads it only when poll says so
  Writer writer(std::move(p.write), chunks, 0ms);
  Captured cap;
  auto r = client.exec(live({"cat"}, p.read.get()), cap.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  REQUIRE(cap.out.size() == all.size());
  CHECK(cap.out == all);
}

TEST_CASE("agent interactive: a stdin at end of file at once closes the job's stdin", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  REQUIRE(null);
  Captured cap;
  auto r = client.exec(live({"wc", "-c"}, null.get()), cap.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  CHECK(cap.out == "0\n");

  // stdin_data goes first, then the descriptor's bytes.
  Pipe p = make_pipe();
  Writer writer(std::move(p.write), {"from the pipe\n"}, 0ms);
  ExecRequest req = live({"cat"}, p.read.get());
  req.stdin_data = "given up front\n";
  Captured both;
  r = client.exec(req, both.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  CHECK(both.out == "given up front\nfrom the pipe\n");
}

TEST_CASE("agent interactive: stdin_fd needs stdin_mode kStream", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& pr) { pr.ignore_all(); });
  AgentClient client = peer.client(1000ms);
  ExecRequest req = command({"cat"});
  req.stdin_mode = proto::StdinMode::kData;
  req.stdin_fd = 0;
  auto r = client.exec(req);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == EINVAL);
  CHECK(has(r.error().message, "stdin_fd"));
  CHECK(client.usable());
}

TEST_CASE("agent interactive: an event_fd that is not open fails the run, naming it", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& pr) { pr.ignore_all(); });
  AgentClient client = peer.client(1000ms);
  ExecCallbacks cb;
  cb.event_fd = 999'999;  // poll(2) reports POLLNVAL for it
  cb.on_event = [] {};
  const auto start = Clock::now();
  auto r = client.exec(command({"true"}), cb);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == EBADF);
  CHECK(has(r.error().message, "event_fd 999999"));
  CHECK(since(start) < 0.9);  // at once, not at the Started deadline
}

TEST_CASE("agent interactive: event_fd wakes on_event, which signals the job", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  UniqueFd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  REQUIRE(event);
  int events = 0;
  Result<void> signalled = fail("on_event did not run");
  ExecCallbacks cb;
  cb.event_fd = event.get();
  cb.on_event = [&] {
    uint64_t n = 0;
    REQUIRE(::read(event.get(), &n, sizeof(n)) == sizeof(n));  // consumes the wake-up
    ++events;
    signalled = client.signal_running(SIGTERM);
  };
  const auto start = Clock::now();
  std::thread poke([&] {
    std::this_thread::sleep_for(300ms);
    const uint64_t one = 1;
    (void)::write(event.get(), &one, sizeof(one));
  });
  ExecRequest req = command({"sleep", "100"});
  req.limits.wall_ms = 120'000;
  auto r = client.exec(req, cb);
  poke.join();
  const double s = since(start);
  REQUIRE(r);
  CHECK(events == 1);
  CHECK(signalled.has_value());
  CHECK(r->started);
  CHECK(r->exit.signal == SIGTERM);
  CHECK(s >= 0.25);
  CHECK(s < 20);
}

TEST_CASE("agent interactive: an epoll fd as event_fd watches several descriptors", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  // Two timers under one epoll fd: the first only counts, the second
  // signals the job.
  UniqueFd tick = timer_after(200ms);
  UniqueFd stop = timer_after(500ms);
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  REQUIRE(ep);
  for (int fd : {tick.get(), stop.get()}) {
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    REQUIRE(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &e) == 0);
  }
  std::vector<int> fired;
  ExecCallbacks cb;
  cb.event_fd = ep.get();
  cb.on_event = [&] {
    epoll_event ready[4];
    const int n = ::epoll_wait(ep.get(), ready, 4, 0);
    for (int i = 0; i < n; ++i) {
      uint64_t expirations = 0;
      REQUIRE(::read(ready[i].data.fd, &expirations, sizeof(expirations)) == sizeof(expirations));
      fired.push_back(ready[i].data.fd);
      if (ready[i].data.fd == stop.get()) REQUIRE(client.signal_running(SIGTERM));
    }
  };
  ExecRequest req = command({"sleep", "100"});
  req.limits.wall_ms = 120'000;
  const auto start = Clock::now();
  auto r = client.exec(req, cb);
  REQUIRE(r);
  CHECK(r->exit.signal == SIGTERM);
  CHECK(since(start) < 20);
  CHECK(fired == std::vector<int>{tick.get(), stop.get()});
}

TEST_CASE("agent interactive: a pty job with live stdin; its end of file is ^D", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  Pipe p = make_pipe();
  Writer writer(std::move(p.write), {"hello\n", "world\n"}, 200ms);
  // cat under sh: cat closes its terminal before it exits, and the agent
  // closes the pty's master once it reads EIO, which hangs up the session
  // (SIGHUP) while a leader that closed its fds is still exiting. sh, the
  // leader here, holds the terminal until it exits.
  ExecRequest req = live({"sh", "-c", "cat; echo done"}, p.read.get());
  req.pty = true;
  Captured cap;
  auto r = client.exec(req, cap.callbacks());
  REQUIRE(r);
  INFO(cap.out);
  // StdinClose on a pty is the terminal's EOF character: cat ends by itself.
  CHECK(r->exit.exit_code == 0);
  CHECK(r->exit.signal == 0);
  CHECK(has(cap.out, "hello"));
  CHECK(has(cap.out, "world"));
  CHECK(has(cap.out, "done"));
}

TEST_CASE("agent interactive: stdin from a host pseudo-terminal ends with its hang-up (EIO)", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  // The job's stdin is this pty's master: what is written on the slave
  // comes out there, and closing the slave makes the master's read fail
  // with EIO, its end of file.
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  REQUIRE(master);
  REQUIRE(::grantpt(master.get()) == 0);
  REQUIRE(::unlockpt(master.get()) == 0);
  UniqueFd slave(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
  REQUIRE(slave);
  termios t{};
  REQUIRE(::tcgetattr(slave.get(), &t) == 0);
  ::cfmakeraw(&t);
  REQUIRE(::tcsetattr(slave.get(), TCSANOW, &t) == 0);
  // The gap lets the master's reader take the line before the hang-up.
  Writer writer(std::move(slave), {"typed\n", ""}, 500ms);
  Captured cap;
  const auto start = Clock::now();
  auto r = client.exec(live({"cat"}, master.get()), cap.callbacks());
  REQUIRE(r);
  CHECK(r->exit.exit_code == 0);
  CHECK(cap.out == "typed\n");
  CHECK(since(start) < 20);
}

TEST_CASE("agent interactive: resize_running sets the size a pty job sees", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  // The job prints its size, waits for a line, prints it again. Once the
  // first size is out, on_stdout pokes event_fd; on_event then sends the
  // Resize and only after it the line, so the agent has them in that order.
  UniqueFd event(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  REQUIRE(event);
  Pipe p = make_pipe();
  std::string out;
  bool poked = false;
  Result<void> resized = fail("on_event did not run");
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) {
    out.append(d);
    if (!poked && has(out, "24 80")) {
      poked = true;
      const uint64_t one = 1;
      REQUIRE(::write(event.get(), &one, sizeof(one)) == sizeof(one));
    }
  };
  cb.event_fd = event.get();
  cb.on_event = [&] {
    uint64_t n = 0;
    REQUIRE(::read(event.get(), &n, sizeof(n)) == sizeof(n));
    resized = client.resize_running(37, 101);
    REQUIRE(::write(p.write.get(), "go\n", 3) == 3);
    p.write.reset();
  };
  ExecRequest req = live({"sh", "-c", "stty size; read line; stty size"}, p.read.get());
  req.pty = true;
  req.rows = 24;
  req.cols = 80;
  auto r = client.exec(req, cb);
  REQUIRE(r);
  INFO(out);
  CHECK(resized.has_value());
  CHECK(r->exit.exit_code == 0);
  CHECK(has(out, "24 80"));   // the Exec's size at the start
  CHECK(has(out, "37 101"));  // the Resize's after the line
  CHECK(out.find("24 80") < out.find("37 101"));
  // No job running: nothing to resize.
  auto idle = client.resize_running(10, 10);
  REQUIRE_FALSE(idle);
  CHECK(has(idle.error().message, "no job is running"));
}

TEST_CASE("agent interactive: resize_running to an agent older than 1.6 is EPROTONOSUPPORT", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& pr) {
    auto hello = pr.request();
    if (!hello) return;
    pr.send(hello->id, proto::Hello{proto::kVersionMajor, 5, 0});
    auto exec = pr.request();
    if (!exec) return;
    pr.send(exec->id, proto::Started{3});
    pr.send(exec->id, proto::Exited{});
    pr.ignore_all();
  });
  AgentClient client = peer.client(1000ms);
  REQUIRE(client.hello());
  Result<void> resized;
  ExecCallbacks cb;
  cb.on_started = [&](uint32_t) { resized = client.resize_running(30, 100); };
  ExecRequest req;
  req.argv = {"/bin/true"};
  auto r = client.exec(req, cb);
  REQUIRE(r);
  REQUIRE_FALSE(resized);
  INFO(resized.error().message);
  CHECK(resized.error().code == EPROTONOSUPPORT);
  CHECK(has(resized.error().message, "1.5"));
  CHECK(has(resized.error().message, "1.6"));
}

TEST_CASE("agent interactive: an agent that grants no stdin credit: stdin is not read, nor polled in a loop, and "
          "the run ends by its deadline",
          "[unit][agent]") {
  std::atomic<int> stdin_frames{0};
  FakeAgentPeer peer([&](FakeAgentPeer& pr) {
    pr.answer_hello();
    auto exec = pr.request();
    if (!exec) return;
    pr.send(exec->id, proto::Started{11});
    while (auto f = pr.request()) {
      if (f->type == uint16_t(proto::MsgType::kStdinData) || f->type == uint16_t(proto::MsgType::kStdinClose)) {
        ++stdin_frames;
      }
    }
  });
  AgentClient client = peer.client(1000ms);
  REQUIRE(client.hello());
  Pipe p = make_pipe();
  REQUIRE(::write(p.write.get(), "x", 1) == 1);
  p.write.reset();  // readable and at end of file: a poll of it would never wait
  ExecRequest req = live({"cat"}, p.read.get());
  req.limits.wall_ms = 300;
  const double cpu_before = thread_cpu_s();
  const auto start = Clock::now();
  auto r = client.exec(req);
  const double s = since(start);
  const double cpu = thread_cpu_s() - cpu_before;
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ETIMEDOUT);
  CHECK(has(r.error().message, "the run's end"));
  const double deadline = 0.3 + std::chrono::duration<double>(AgentClient::kExitGrace).count();
  CHECK(s >= deadline * 0.9);
  CHECK(s < deadline + 5);
  CHECK(cpu < 0.5);  // slept in poll, not spun
  CHECK(stdin_frames == 0);
  char c = 0;
  CHECK(::read(p.read.get(), &c, 1) == 1);  // the byte is still there
  CHECK(c == 'x');
}

TEST_CASE("agent interactive: a dripped frame does not hold the caller's events, and still has its deadline",
          "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& pr) {
    pr.answer_hello();
    auto exec = pr.request();
    if (!exec) return;
    pr.send(exec->id, proto::Started{5});
    std::vector<uint8_t> header(proto::kOutputHeaderSize);
    REQUIRE(proto::put_output_header(std::span<uint8_t, proto::kOutputHeaderSize>(header), exec->id,
                                     proto::Stream::kStdout, 1000) == proto::Status::kOk);
    pr.write(header);
    pr.drip(std::vector<uint8_t>(1000, 'x'), 100ms);
  });
  AgentClient client = peer.client(1500ms);
  REQUIRE(client.hello());
  UniqueFd timer = timer_after(400ms);
  const auto start = Clock::now();
  double event_s = -1;
  ExecCallbacks cb;
  cb.event_fd = timer.get();
  cb.on_event = [&] {
    uint64_t n = 0;
    REQUIRE(::read(timer.get(), &n, sizeof(n)) == sizeof(n));
    event_s = since(start);
  };
  ExecRequest req;
  req.argv = {"/bin/true"};
  auto r = client.exec(req, cb);
  const double s = since(start);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ETIMEDOUT);
  CHECK(has(r.error().message, "1500 ms after its first byte"));
  // The timer fired in the middle of the frame and was served then.
  CHECK(event_s >= 0.35);
  CHECK(event_s < 1.2);
  CHECK(s >= 1.4);
  CHECK(s < 1.5 + 5);
  CHECK_FALSE(client.usable());
}

}  // namespace
}  // namespace husk::agent::test
