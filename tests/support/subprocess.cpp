#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace husk::test {

namespace {
void drain(int fd, std::string& into, bool& open) {
  char buf[65536];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  if (n > 0) {
    into.append(buf, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    open = false;
  }
}
// How long to wait for a child to be reaped. A child killed at the time
// limit may sit in uninterruptible sleep (a KVM ioctl, a stuck file system):
// the test's limit must hold even then, so the wait is bounded.
constexpr double kReapAfterKill = 10;

bool wait_reaped(pid_t pid, int& status, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return true;
    ::usleep(10'000);
  }
  return false;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s,
                          const std::string& stdin_data, int signal_after_ms,
                          int signal_to_send) {
  ProcessResult result;
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(in_pipe[0]);
  if (!stdin_data.empty()) {
    [[maybe_unused]] ssize_t n = ::write(in_pipe[1], stdin_data.data(), stdin_data.size());
  }
  ::close(in_pipe[1]);

  bool out_open = true, err_open = true, signalled = false;
  while (out_open || err_open) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > timeout_s) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (!signalled && signal_after_ms >= 0 && elapsed * 1000 >= signal_after_ms) {
      ::kill(pid, signal_to_send);
      signalled = true;
    }
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    if (::poll(fds, 2, 20) <= 0) continue;
    if (fds[0].revents) drain(out_pipe[0], result.out, out_open);
    if (fds[1].revents) drain(err_pipe[0], result.err, err_open);
  }
  int status = 0;
  // The pipes are closed, so the child is usually exiting; it still gets
  // only what is left of its time, then SIGKILL and a bounded wait.
  const double left =
      timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.timed_out || left <= 0 || !wait_reaped(pid, status, left)) {
    result.timed_out = true;
    ::kill(pid, SIGKILL);
    if (!wait_reaped(pid, status, kReapAfterKill)) {
      result.unreaped = true;
      result.err += "\n[run_process: the child did not go away after SIGKILL; given up]\n";
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace husk::test
