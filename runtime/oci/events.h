// What a keeper (keeper.h) or an exec'd process's attacher (attach.h)
// waits on besides the agent: the signals it forwards to its process and,
// for a keeper, its control socket (control.h), behind one epoll fd that
// AgentClient::exec can wait on alongside the agent (ExecCallbacks::event_fd).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/oci/control.h"

namespace husk::oci {

// Blocks the signals that are forwarded to the container's process
// (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH),
// so they wait for Events' signalfd, and ignores SIGPIPE. Call it before
// anything slow: a signal that comes while the VM boots is then handled
// once it is up rather than killing the process.
void block_forwarded_signals();

// Signals whose default action is to do nothing (SIGCHLD, SIGCONT, SIGURG,
// SIGWINCH): sent to a process that has not started, they change nothing.
[[nodiscard]] bool ignored_by_default(int signo);

// One thing that happened: a request on the control socket, or a signal.
struct Happening {
  std::optional<ControlServer::Pending> request;
  int signo = 0;
};

class Events {
 public:
  // The forwarded signals, and the control socket at `control_path`
  // unless it is empty.
  [[nodiscard]] static Result<Events> watch(const std::string& control_path);
  [[nodiscard]] int fd() const { return epoll_.get(); }
  // What is ready within `timeout_ms` (0: now, -1: wait).
  [[nodiscard]] std::vector<Happening> next(int timeout_ms);

 private:
  UniqueFd epoll_;
  UniqueFd signals_;
  std::unique_ptr<ControlServer> control_;
};

// Writes all of `data` to `fd`; gives up quietly when the reader is gone
// (the process's output then has nowhere to go, as with a closed pipe).
void write_all(int fd, std::string_view data);

}  // namespace husk::oci
