// A process in a container's VM, attached to host file descriptors: the
// container's own process (keeper.h) and each `husk-oci exec`. Its stdin is
// read from `io.in` as the agent grants credit, its output written to
// `io.out` and `io.err` as it comes (one terminal for all three when
// `io.terminal`), and while it runs the signals and control requests in
// `events` reach it: kill requests and forwarded signals as signals to its
// process group, SIGWINCH on a terminal as the new size.
#pragma once

#include <functional>
#include <string>

#include "runtime/agent/agent_client.h"
#include "runtime/oci/events.h"

namespace husk::oci {

struct Stdio {
  int in = 0;
  int out = 1;
  int err = 2;
  bool terminal = false;
};

// How the process ended, as the shell says it: an exit code, or 128 + the
// signal that killed it (`signal` set then); 127/126 for a program that
// could not start, 255 when husk or the VM failed under it (`error` says why).
struct ProcessEnd {
  int status = 0;
  int signal = 0;
  std::string error;
};

// Runs `req` to its end. `on_started` runs once the process has started.
[[nodiscard]] ProcessEnd run_attached(agent::AgentClient& agent, agent::ExecRequest req, const Stdio& io,
                                      Events& events, const std::function<void()>& on_started = {});

}  // namespace husk::oci
