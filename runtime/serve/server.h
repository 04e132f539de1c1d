// serve(): `husk serve` (docs/serve.md) from its listening socket to its
// graceful end. The parts: Listener (the socket), VmPool (one thread that
// starts every VM), HttpFront (cpp-httplib: connections, bodies, the
// concurrency limit), call_function (one request on one VM) and answer_for
// (the HTTP answer). The calling thread keeps the stop signals.
//
// Threads: the caller's (signals, then the shutdown), the pool's, the HTTP
// server's accept thread and its connection threads (max_concurrent +
// spare), and one timer thread per running request. Only the pool's forks.
// Forking from a threaded process copies only the forking thread: a lock
// another thread held at that moment stays locked in the child. What the
// child of VmmProcess::start does before it is alone with its VM is kept
// off shared locks: every seccomp filter it compiles is compiled here
// first, before any thread (std::call_once then takes no lock); malloc is
// fork-safe in glibc; it writes to no stdio stream. What remains (the
// logger's lock, should the child log, which it does at debug level or on
// a failure, at the very moment another thread logs) is bounded by the
// VMM's build timeout (30 s): that start fails, and the pool tries again.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/common/result.h"
#include "runtime/common/signals.h"
#include "runtime/job/job.h"
#include "runtime/job/job_runner.h"
#include "runtime/serve/listen_address.h"

namespace husk::serve {

struct ServeOptions {
  ListenAddress listen;
  size_t pool = 2;            // VMs kept started (0: each request starts its own)
  size_t max_concurrent = 4;  // requests running at once; more get 503
  std::chrono::milliseconds request_timeout{60'000};
  uint64_t max_body = 16ull << 20;
  // How VMs start: the jail, the snapshot cache. Not confine_caller: the
  // main class's filter would hold every thread started after it.
  job::RunnerOptions runner;
  std::string husk_version;
};

using Log = std::function<void(std::string_view)>;

// Serves `job` (prepare_function_job'd) until SIGINT, SIGTERM or SIGHUP
// arrives on `signals`: then no new connections, the requests in flight
// finish (each within its timeout), the ready VMs are destroyed, and it
// returns. SIGQUIT logs the pool and the requests in flight. An error only
// before serving: the socket, the function's snapshot (made first, before
// any thread, when the VMs start from one), or the pool's first VM.
[[nodiscard]] Result<void> serve(const job::Job& job, const ServeOptions& options, const StopSignals& signals,
                                 const Log& log);

}  // namespace husk::serve
