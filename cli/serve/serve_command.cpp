// husk serve (the husk-serve program, cli/serve/main.cpp): the function job
// and the flags become a serve::ServeOptions; runtime/serve/ does the serving. Exit codes: 0 after a stop signal, 2 for
// bad options or a job that is not a function, 3 when it cannot listen or
// its first VM does not start.
#include "cli/serve/serve_command.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/sandbox_flags.h"
#include "cli/version.h"
#include "cli/vm_options.h"
#include "runtime/common/signals.h"
#include "runtime/job/units.h"
#include "runtime/serve/function_job.h"
#include "runtime/serve/server.h"

namespace husk::cli {

namespace {

struct ServeFlags {
  std::string job_file;
  std::string listen;
  size_t pool = 2;
  size_t max_concurrent = 4;
  std::string request_timeout = "60s";
  std::string max_body = "16MiB";
  std::string start = "snapshot";
  std::string snapshot_cache;  // --snapshot-cache
  std::string snapshot_dir;    // --snapshot DIR
  VmFlags vm;
  SandboxFlags sandbox;
};

// One line on stderr, in one write(2): lines from many threads never mix.
void log_line(std::string_view line) {
  const std::string text = fmt::format("husk serve: {}\n", line);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

Result<serve::ServeOptions> serve_options(const ServeFlags& f) {
  serve::ServeOptions o;
  HUSK_TRY_ASSIGN(o.listen, serve::parse_listen_address(f.listen));
  o.pool = f.pool;
  if (f.max_concurrent == 0) return fail("--max-concurrent must be at least 1");
  o.max_concurrent = f.max_concurrent;
  auto timeout = job::parse_duration(f.request_timeout);
  if (!timeout) return wrap("--request-timeout", timeout.error());
  if (timeout->count() <= 0) return fail("--request-timeout must be more than 0");
  o.request_timeout = *timeout;
  auto body = job::parse_size(f.max_body);
  if (!body) return wrap("--max-body", body.error());
  o.max_body = *body;
  o.husk_version = kHuskVersion;
  return o;
}

int serve_main(ServeFlags& f) {
  // Loaded as a plain job: prepare_function_job makes the request
  // [process]'s stdin, with messages about serve rather than --input.
  auto job = load_job_with_flags(f.job_file, f.vm, false);
  if (!job) {
    fmt::print(stderr, "{}\n", job.error().message);
    return kExitUsage;
  }
  if (!f.snapshot_dir.empty() && f.start == "boot") {
    fmt::print(stderr, "husk serve: --snapshot DIR restores that snapshot: not with --start boot\n");
    return kExitUsage;
  }
  const job::StartMode start = f.start == "boot" ? job::StartMode::kBoot : job::StartMode::kSnapshot;
  if (auto function = serve::prepare_function_job(*job, start); !function) {
    fmt::print(stderr, "husk serve: {}\n", function.error().message);
    return kExitUsage;
  }
  auto options = serve_options(f);
  if (!options) {
    fmt::print(stderr, "husk serve: {}\n", options.error().message);
    return kExitUsage;
  }
  // The sandbox as `husk run` has it, but for confine_caller: the main
  // class's filter is per thread and would hold the HTTP threads too.
  if (auto applied = apply_seccomp_flag(f.sandbox); !applied) {
    fmt::print(stderr, "husk serve: {}\n", applied.error().message);
    return kExitUsage;
  }
  auto jail = jail_for(f.sandbox, job->vm);
  if (!jail) {
    fmt::print(stderr, "husk serve: {}\n", jail.error().message);
    return kExitUsage;
  }
  options->runner.jail = std::move(*jail);
  options->runner.snapshot_cache = f.snapshot_cache;
  options->runner.snapshot_dir = f.snapshot_dir;

  install_signal_handlers();
  // Blocked here, before any thread, so that every thread inherits the
  // mask; read by this thread from a signalfd (server.h).
  const StopSignals signals;
  if (auto served = serve::serve(*job, *options, signals, log_line); !served) {
    log_line(served.error().message);
    return kExitInternal;
  }
  return kExitOk;
}

}  // namespace

void add_serve_options(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = &app;
  cmd->add_option("job", f->job_file, "the function's job file: [process], whose stdin is the request")->required();
  cmd->add_option("--listen", f->listen,
                  "unix:PATH (or a path with a '/'), or a loopback HOST:PORT: 127.0.0.1:8080, localhost:8080, "
                  "[::1]:8080 (port 0: any free one)")
      ->required();
  cmd->add_option("--pool", f->pool, "VMs kept started ahead of the requests (0: each request starts its own)")
      ->capture_default_str();
  cmd->add_option("--max-concurrent", f->max_concurrent, "requests run at once; more get 503 at once")
      ->capture_default_str();
  cmd->add_option("--request-timeout", f->request_timeout,
                  "a request's whole time (waiting for a VM included); past it its VM is killed and the answer is 504")
      ->capture_default_str();
  cmd->add_option("--max-body", f->max_body, "the largest request body; larger ones get 413")->capture_default_str();
  cmd->add_option("--start", f->start,
                  "how each VM starts: snapshot (restored from the function's snapshot) or boot (cold boot)")
      ->check(CLI::IsMember({"snapshot", "boot"}))
      ->capture_default_str();
  cmd->add_option("--snapshot-cache", f->snapshot_cache,
                  "where snapshots are kept (default $HUSK_SNAPSHOT_CACHE, else ~/.cache/husk/snapshots)");
  cmd->add_option("--snapshot", f->snapshot_dir,
                  "restore every VM from this snapshot folder (from `husk snapshot create --out`), not the cache's");
  add_vm_flags(*cmd, f->vm, kVmShape);
  add_seccomp_flag(*cmd, f->sandbox);
  add_jail_flags(*cmd, f->sandbox);
  cmd->callback([f, &exit_code] { exit_code = serve_main(*f); });
}

}  // namespace husk::cli
