#include "runtime/serve/server.h"

#include <poll.h>
#include <signal.h>

#include <filesystem>

#include <fmt/format.h>

#include "runtime/common/deadline.h"
#include "runtime/job/units.h"
#include "runtime/serve/answer.h"
#include "runtime/serve/function_call.h"
#include "runtime/serve/http_front.h"
#include "runtime/serve/listener.h"
#include "runtime/serve/vm_pool.h"
#include "seccomp/filter.h"

namespace husk::serve {

namespace {

using Clock = std::chrono::steady_clock;
using Pool = VmPool<PooledVm>;

// How often the wait for the pool's first VM looks at the signals.
constexpr std::chrono::milliseconds kSignalPoll{100};

// The signal waiting on `signals`, or 0; waits up to `wait`.
int next_signal(const StopSignals& signals, std::chrono::milliseconds wait) {
  pollfd p{signals.fd(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return 0;
  return signals.take();
}

std::string status_line(const Pool& pool, const HttpFront* front) {
  const Pool::Stats s = pool.stats();
  return fmt::format("{} request(s) in flight; pool: {} ready, {} request(s) waiting for a VM{}, {} started, {} "
                     "failed to start",
                     front != nullptr ? front->in_flight() : 0, s.ready, s.waiting, s.starting ? " (one starting)" : "",
                     s.started, s.failed);
}

HttpAnswer handle(const job::Job& job, const ServeOptions& o, Pool& pool, const std::string& start, CallRequest r) {
  const Deadline deadline = Deadline::at(r.arrived + o.request_timeout);
  CallOutcome outcome;
  auto vm = pool.acquire(deadline);
  if (vm) {
    outcome = call_function(job, std::move(*vm), std::move(r.body), deadline, o.request_timeout);
  } else if (vm.error().code == ETIMEDOUT) {
    outcome = no_vm_outcome(job, job::Verdict::kTimeout,
                            fmt::format("no VM was ready within --request-timeout ({})",
                                        job::format_duration(o.request_timeout)));
  } else {
    outcome = no_vm_outcome(job, job::Verdict::kInternal, "no VM for the request: " + vm.error().message);
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - r.arrived).count();
  return answer_for(outcome, AnswerContext{r.json, start, ms, o.husk_version});
}

}  // namespace

Result<void> serve(const job::Job& job, const ServeOptions& o, const StopSignals& signals, const Log& log) {
  if (signals.fd() < 0) return fail("no signalfd for the stop signals");
  HUSK_TRY_ASSIGN(Listener listener, Listener::open(o.listen));
  // Before the first thread: every filter a VMM process (and a request's
  // run) compiles, so that the forked child finds them done (server.h).
  HUSK_TRY(seccomp::prepare({seccomp::ThreadClass::kVmm, seccomp::ThreadClass::kVcpu, seccomp::ThreadClass::kBlock,
                             seccomp::ThreadClass::kRng, seccomp::ThreadClass::kVsock, seccomp::ThreadClass::kConsole,
                             seccomp::ThreadClass::kWatchdog}));
  const std::string start = job.vm.start == job::StartMode::kSnapshot ? "snapshot" : "boot";
  if (job.vm.start == job::StartMode::kSnapshot) {
    // Made (or found in the cache) now, while this is the only thread: the
    // first request, or the pool's first VM, does not pay for it, and a
    // snapshot that cannot be made stops husk serve before it listens.
    const auto began = Clock::now();
    log("the function's snapshot: from the cache, or made now (a boot)");
    auto snapshot = job::prepare_snapshot(job, o.runner);
    if (!snapshot) return wrap("the function's snapshot", snapshot.error());
    log(fmt::format("snapshot ready in {:.0f} ms: {}",
                    std::chrono::duration<double, std::milli>(Clock::now() - began).count(),
                    std::filesystem::path(snapshot->state_path).parent_path().string()));
  }

  Pool::Options pool_options;
  pool_options.size = o.pool;
  if (o.pool > 0) log(fmt::format("starting the pool's first VM ({})", start));
  HUSK_TRY_ASSIGN(
      std::unique_ptr<Pool> pool,
      Pool::start(pool_options, [&job, &o] { return start_pooled_vm(job, o.runner); }, pooled_vm_usable,
                  [&log](std::string_view line) { log(fmt::format("pool: {}", line)); }));
  if (o.pool > 0) {
    for (;;) {
      auto ready = pool->wait_ready(Deadline::after(kSignalPoll));
      if (!ready) return wrap("the first VM did not start", ready.error());
      if (*ready) break;
      if (const int sig = next_signal(signals, std::chrono::milliseconds(0)); sig != 0 && sig != SIGQUIT) {
        log(fmt::format("SIG{} before serving: stopped", ::sigabbrev_np(sig)));
        return {};
      }
    }
  }

  FrontOptions front_options;
  front_options.max_concurrent = o.max_concurrent;
  front_options.max_body = o.max_body;
  const std::string where = listener.description();
  const std::string url = listener.url();
  HUSK_TRY_ASSIGN(std::unique_ptr<HttpFront> front,
                  HttpFront::start(
                      listener.take_fd(), front_options,
                      [&job, &o, &pool, &start](CallRequest r) { return handle(job, o, *pool, start, std::move(r)); },
                      [&log](std::string_view line) { log(line); }));
  log(fmt::format("listening on {} ({}; pool {}, max-concurrent {}, request-timeout {}, start {})", where, url, o.pool,
                  o.max_concurrent, job::format_duration(o.request_timeout), start));

  int sig = 0;
  while (sig == 0 || sig == SIGQUIT) {
    if (sig == SIGQUIT) log(status_line(*pool, front.get()));
    sig = next_signal(signals, std::chrono::milliseconds(-1));
  }
  log(fmt::format("SIG{}: no new connections; {} request(s) in flight finish first", ::sigabbrev_np(sig),
                  front->in_flight()));
  pool->drain();
  front->stop();
  pool->stop();
  log("stopped");
  return {};
}

}  // namespace husk::serve
