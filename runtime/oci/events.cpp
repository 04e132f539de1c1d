#include "runtime/oci/events.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

namespace husk::oci {

namespace {
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH};

sigset_t forwarded_set() {
  sigset_t set;
  ::sigemptyset(&set);
  for (int s : kForwarded) ::sigaddset(&set, s);
  return set;
}
}  // namespace

void block_forwarded_signals() {
  const sigset_t set = forwarded_set();
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

bool ignored_by_default(int signo) {
  return signo == SIGCHLD || signo == SIGCONT || signo == SIGURG || signo == SIGWINCH;
}

Result<Events> Events::watch(const std::string& control_path) {
  Events e;
  const sigset_t set = forwarded_set();
  e.signals_ = UniqueFd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!e.signals_) return fail_errno("signalfd");
  e.epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!e.epoll_) return fail_errno("epoll_create1");
  if (!control_path.empty()) {
    HUSK_TRY_ASSIGN(ControlServer server, ControlServer::listen(control_path));
    e.control_ = std::make_unique<ControlServer>(std::move(server));
  }
  for (int fd : {e.control_ ? e.control_->fd() : -1, e.signals_.get()}) {
    if (fd < 0) continue;
    epoll_event ev{EPOLLIN, {.fd = fd}};
    if (::epoll_ctl(e.epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return fail_errno("epoll_ctl");
  }
  return e;
}

std::vector<Happening> Events::next(int timeout_ms) {
  std::vector<Happening> out;
  epoll_event evs[2];
  const int n = ::epoll_wait(epoll_.get(), evs, 2, timeout_ms);
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.fd == signals_.get()) {
      signalfd_siginfo info{};
      while (::read(signals_.get(), &info, sizeof(info)) == sizeof(info)) {
        out.push_back(Happening{std::nullopt, static_cast<int>(info.ssi_signo)});
      }
    } else if (control_) {
      // Non-blocking: accept until none is left. A bad request was answered
      // and dropped inside accept(); one still waiting wakes epoll again.
      while (auto pending = control_->accept()) out.push_back(Happening{std::move(pending), 0});
    }
  }
  return out;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace husk::oci
