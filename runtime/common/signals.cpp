#include "runtime/common/signals.h"

#include <pthread.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "seccomp/violation.h"

namespace husk {

namespace {
void no_op_handler(int) {}

std::atomic<int> g_forward_fd{-1};
std::atomic<int> g_pending_signal{0};

void send_signal_number(int fd, int signo) {
  const int32_t number = signo;
  // Async-signal-safe: one send(2); a full or closed channel loses nothing
  // that matters (the VM is stopping or gone).
  [[maybe_unused]] const ssize_t n = ::send(fd, &number, sizeof(number), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void forward_handler(int signo) {
  const int saved = errno;
  const int fd = g_forward_fd.load();
  if (fd >= 0) {
    send_signal_number(fd, signo);
  } else {
    g_pending_signal.store(signo);
  }
  errno = saved;
}

sigset_t stop_set(bool with_quit) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (with_quit) sigaddset(&set, SIGQUIT);
  return set;
}
}  // namespace

int kick_signal() { return SIGRTMIN + 1; }

void install_signal_handlers() {
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction action {};
  action.sa_handler = no_op_handler;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: KVM_RUN must come back with EINTR.
  action.sa_flags = 0;
  ::sigaction(kick_signal(), &action, nullptr);
  seccomp::install_violation_reporter();
}

void forward_stop_signals() {
  struct sigaction action {};
  action.sa_handler = forward_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signo : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaction(signo, &action, nullptr);
}

void set_stop_signal_target(int fd) {
  g_forward_fd.store(fd);
  if (fd < 0) return;
  if (const int pending = g_pending_signal.exchange(0); pending != 0) send_signal_number(fd, pending);
}

void block_stop_signals() {
  const sigset_t set = stop_set(false);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

StopSignals::StopSignals() : set_(stop_set(true)) {
  ::pthread_sigmask(SIG_BLOCK, &set_, &old_);
  fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
}

StopSignals::~StopSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

int StopSignals::take() const {
  signalfd_siginfo info{};
  if (::read(fd_.get(), &info, sizeof(info)) != sizeof(info)) return 0;
  return static_cast<int>(info.ssi_signo);
}

}  // namespace husk
