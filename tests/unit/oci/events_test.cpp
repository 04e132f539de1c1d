// What a keeper waits on (runtime/oci/events.h): real signals through the
// signalfd, real control requests through the control socket, behind one
// epoll fd; the default-ignored signals checked against real processes.
#include "runtime/oci/events.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/joining_thread.h"
#include "tests/support/temp_dir.h"

namespace husk::oci {
namespace {

using std::chrono::milliseconds;

constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH};

// block_forwarded_signals() changes the whole test process (and what its
// later children inherit): this puts the signal mask and SIGPIPE back,
// after taking any forwarded signal still pending so that unblocking it
// does not deliver it.
class SignalStateGuard {
 public:
  SignalStateGuard() {
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask_);
    ::sigaction(SIGPIPE, nullptr, &pipe_);
  }
  ~SignalStateGuard() {
    sigset_t set;
    ::sigemptyset(&set);
    for (int s : kForwarded) ::sigaddset(&set, s);
    const timespec now{0, 0};
    while (::sigtimedwait(&set, nullptr, &now) > 0) {
    }
    ::pthread_sigmask(SIG_SETMASK, &mask_, nullptr);
    ::sigaction(SIGPIPE, &pipe_, nullptr);
  }
  SignalStateGuard(const SignalStateGuard&) = delete;
  SignalStateGuard& operator=(const SignalStateGuard&) = delete;

 private:
  sigset_t mask_{};
  struct sigaction pipe_ {};
};

std::vector<int> signals_of(const std::vector<Happening>& hs) {
  std::vector<int> out;
  for (const Happening& h : hs) {
    if (!h.request) out.push_back(h.signo);
  }
  return out;
}

// Calls next() until a control request comes (bounded), keeping the
// signals that came in the same batches.
std::optional<Happening> next_request(Events& events, std::vector<int>& signals) {
  std::optional<Happening> request;
  for (int i = 0; i < 10 && !request; ++i) {
    for (Happening& h : events.next(1000)) {
      if (h.request && !request) {
        request = std::move(h);
      } else {
        signals.push_back(h.signo);
      }
    }
  }
  return request;
}

TEST_CASE("events: forwarded signals come through the signalfd", "[oci][events]") {
  SignalStateGuard guard;
  block_forwarded_signals();

  sigset_t mask;
  REQUIRE(::pthread_sigmask(SIG_SETMASK, nullptr, &mask) == 0);
  for (int s : kForwarded) {
    INFO(s);
    CHECK(::sigismember(&mask, s) == 1);
  }
  // SIGKILL, SIGSTOP cannot be blocked and SIGCHLD is not forwarded.
  CHECK(::sigismember(&mask, SIGCHLD) == 0);
  struct sigaction pipe_action {};
  REQUIRE(::sigaction(SIGPIPE, nullptr, &pipe_action) == 0);
  CHECK(pipe_action.sa_handler == SIG_IGN);

  auto events = Events::watch("");
  REQUIRE(events);
  REQUIRE(events->fd() >= 0);
  // Nothing pending: next(0) returns at once with nothing.
  CHECK(events->next(0).empty());

  REQUIRE(::raise(SIGUSR1) == 0);
  // The epoll fd is what AgentClient::exec polls alongside the agent.
  pollfd p{events->fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 1000) == 1);
  const auto first = events->next(1000);
  REQUIRE(first.size() == 1);
  CHECK_FALSE(first[0].request.has_value());
  CHECK(first[0].signo == SIGUSR1);
  // Taken: it does not come twice.
  CHECK(events->next(0).empty());

  // Several pending signals come out of one next().
  REQUIRE(::raise(SIGTERM) == 0);
  REQUIRE(::raise(SIGWINCH) == 0);
  std::vector<int> got = signals_of(events->next(1000));
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<int>{SIGTERM, SIGWINCH});
}

TEST_CASE("events: a control request is a happening, answered through it", "[oci][events]") {
  SignalStateGuard guard;
  block_forwarded_signals();
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  auto events = Events::watch(path);
  REQUIRE(events);

  const bool refuse = GENERATE(false, true);
  Result<void> called = fail("not called");
  auto caller = JoiningThread::start("control client", [&] {
    called = control_call(path, ControlRequest{ControlRequest::Kind::kKill, SIGTERM}, milliseconds(5000));
  });
  REQUIRE(caller);

  std::vector<int> signals;
  auto h = next_request(*events, signals);
  REQUIRE(h);
  CHECK(signals.empty());
  REQUIRE(h->request.has_value());
  CHECK(h->request->request.kind == ControlRequest::Kind::kKill);
  CHECK(h->request->request.signo == SIGTERM);
  CHECK(h->signo == 0);

  ControlServer::answer(*h->request, refuse ? Result<void>(fail("the process has exited")) : Result<void>());
  // The answer closed the connection.
  CHECK_FALSE(h->request->conn);
  caller->join();
  if (refuse) {
    REQUIRE_FALSE(called);
    CHECK(called.error().message == "the process has exited");
  } else {
    CHECK(called);
  }
}

TEST_CASE("events: signals and requests together, bad requests dropped", "[oci][events]") {
  SignalStateGuard guard;
  block_forwarded_signals();
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  auto events = Events::watch(path);
  REQUIRE(events);

  // A bad request is answered by the server and yields nothing.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd raw(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  REQUIRE(raw);
  REQUIRE(::connect(raw.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::send(raw.get(), "pause", 5, 0) == 5);
  CHECK(events->next(1000).empty());
  char buf[256] = {};
  const ssize_t n = ::recv(raw.get(), buf, sizeof(buf), MSG_DONTWAIT);
  REQUIRE(n > 0);
  CHECK_THAT(std::string(buf, static_cast<size_t>(n)), Catch::StartsWith("error "));

  // A signal and a start request at once: both come out.
  Result<void> called = fail("not called");
  auto caller = JoiningThread::start("control client", [&] {
    called = control_call(path, ControlRequest{ControlRequest::Kind::kStart, 0}, milliseconds(5000));
  });
  REQUIRE(caller);
  REQUIRE(::raise(SIGHUP) == 0);
  std::vector<int> signals;
  auto h = next_request(*events, signals);
  REQUIRE(h);
  CHECK(h->request->request.kind == ControlRequest::Kind::kStart);
  ControlServer::answer(*h->request, {});
  caller->join();
  CHECK(called);
  for (const Happening& more : events->next(0)) {
    if (!more.request) signals.push_back(more.signo);
  }
  CHECK(signals == std::vector<int>{SIGHUP});
}

TEST_CASE("events: watch fails on a control path it cannot bind", "[oci][events]") {
  auto events = Events::watch("/proc/husk-no-such-folder/control.sock");
  REQUIRE_FALSE(events);
  CHECK_THAT(events.error().message, Catch::Contains("control.sock"));
}

// Whether a process with default dispositions survives `signo`: forks one
// that sends it to itself. No core files: the child is not dumpable.
bool survives_by_default(int signo) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::prctl(PR_SET_DUMPABLE, 0);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(signo, &dfl, nullptr);
    sigset_t all;
    ::sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::kill(::getpid(), signo);
    ::_exit(0);
  }
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, WUNTRACED)) < 0 && errno == EINTR) {
  }
  REQUIRE(r == pid);
  if (WIFSTOPPED(status)) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_CASE("events: ignored_by_default matches the kernel's default actions", "[oci][events]") {
  CHECK(ignored_by_default(SIGCHLD));
  CHECK(ignored_by_default(SIGWINCH));
  CHECK_FALSE(ignored_by_default(SIGTERM));
  CHECK_FALSE(ignored_by_default(SIGKILL));
  // Stop signals are left out of the real check: in an orphaned process
  // group (a test run under setsid) the kernel drops them instead.
  CHECK_FALSE(ignored_by_default(SIGTSTP));
  CHECK_FALSE(ignored_by_default(SIGTTIN));
  CHECK_FALSE(ignored_by_default(SIGTTOU));
  std::vector<int> signals;
  for (int s = 1; s < 32; ++s) {
    if (s != SIGTSTP && s != SIGTTIN && s != SIGTTOU) signals.push_back(s);
  }
  signals.push_back(SIGRTMIN);
  signals.push_back(SIGRTMAX);
  for (int s : signals) {
    INFO("signal " << s << " (" << (::sigabbrev_np(s) != nullptr ? ::sigabbrev_np(s) : "RT") << ")");
    CHECK(ignored_by_default(s) == survives_by_default(s));
  }
}

TEST_CASE("events: write_all writes everything, and gives up on a closed reader", "[oci][events]") {
  SignalStateGuard guard;
  block_forwarded_signals();
  int fds[2] = {-1, -1};
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  // More than a pipe holds: the reader drains it meanwhile.
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  std::string got;
  auto reader = JoiningThread::start("pipe reader", [&] {
    char buf[65536];
    ssize_t n = 0;
    while ((n = ::read(read_end.get(), buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  });
  REQUIRE(reader);
  write_all(write_end.get(), data);
  write_end.reset();
  reader->join();
  CHECK(got.size() == data.size());
  CHECK(got == data);

  // The reader gone: EPIPE (SIGPIPE is ignored), and write_all returns.
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  ::close(fds[0]);
  UniqueFd orphan(fds[1]);
  write_all(orphan.get(), std::string(100000, 'x'));
  errno = 0;
  CHECK(::write(orphan.get(), "x", 1) == -1);
  CHECK(errno == EPIPE);
}

}  // namespace
}  // namespace husk::oci
