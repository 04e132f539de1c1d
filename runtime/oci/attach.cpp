#include "runtime/oci/attach.h"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runtime/oci/console.h"

namespace husk::oci {

namespace proto = agent::proto;

ProcessEnd run_attached(agent::AgentClient& agent, agent::ExecRequest req, const Stdio& io, Events& events,
                        const std::function<void()>& on_started) {
  req.stdin_mode = proto::StdinMode::kStream;
  req.stdin_fd = io.in;
  req.pty = io.terminal;
  if (io.terminal) {
    const TermSize size = terminal_size(io.in);
    if (size.rows != 0) {
      req.rows = size.rows;
      req.cols = size.cols;
    }
  }
  agent::ExecCallbacks cb;
  cb.on_started = [&on_started](uint32_t) {
    if (on_started) on_started();
  };
  cb.on_stdout = [&io](std::string_view d) { write_all(io.out, d); };
  cb.on_stderr = [&io](std::string_view d) { write_all(io.err, d); };
  cb.event_fd = events.fd();
  cb.on_event = [&] {
    for (Happening& h : events.next(0)) {
      if (h.request) {
        if (h.request->request.kind == ControlRequest::Kind::kStart) {
          ControlServer::answer(*h.request, fail("the container is running already"));
        } else {
          ControlServer::answer(*h.request, agent.signal_running(h.request->request.signo));
        }
      } else if (h.signo == SIGWINCH) {
        const TermSize size = terminal_size(io.in);
        if (io.terminal && size.rows != 0) (void)agent.resize_running(size.rows, size.cols);
      } else if (h.signo != 0) {
        (void)agent.signal_running(h.signo);
      }
    }
  };
  auto result = agent.exec(req, cb);
  if (!result) return ProcessEnd{255, 0, "the process was lost: " + result.error().message};
  if (!result->started) {
    const int err = result->failure.err;
    return ProcessEnd{err == ENOENT ? 127 : 126, 0,
                      fmt::format("the process could not start ({} failed: {})",
                                  proto::stage_name(result->failure.stage), std::strerror(err))};
  }
  const proto::Exited& exit = result->exit;
  if (exit.signal != 0) return ProcessEnd{128 + exit.signal, exit.signal, {}};
  return ProcessEnd{exit.exit_code, 0, {}};
}

}  // namespace husk::oci
