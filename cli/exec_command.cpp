// husk exec: a one-step job built from flags. It shares the job layer with
// `husk run` (runtime/job/) and keeps the shell's exit-status convention:
// the command's status, 128+N for signal N, 125-127 for husk's own failures.
#include "cli/exec_command.h"

#include <unistd.h>

#include <memory>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/guest_paths.h"
#include "cli/job_io.h"
#include "cli/sandbox_flags.h"
#include "seccomp/violation.h"
#include "cli/vm_options.h"
#include "runtime/job/job_runner.h"

namespace husk::cli {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct ExecOptions {
  VmFlags vm;
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::string cwd = "/";
  double timeout_s = 0;  // 0: none
  uint64_t memory_limit_mib = 0;
  uint32_t pids_limit = 0;
  double boot_timeout_s = 120;
  bool verbose = false;
  SandboxFlags sandbox;
};

Result<job::Job> exec_job(const ExecOptions& o) {
  job::Job j;
  j.source = "husk exec";
  j.vm.kernel = default_kernel_path();
  j.vm.initramfs = default_initrd_path();
  j.vm.boot_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.boot_timeout_s * 1000));
  HUSK_TRY(apply_vm_flags(o.vm, j.vm));
  job::Step step;
  step.name = "exec";
  step.is_process = true;
  step.argv = o.command;
  step.env["PATH"] = kDefaultPath;
  for (const std::string& kv : o.env) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return fail(fmt::format("--env {}: expected KEY=VALUE", kv));
    step.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  step.cwd = o.cwd;
  if (o.timeout_s > 0) step.limits.wall_time = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  if (o.memory_limit_mib > 0) step.limits.memory = o.memory_limit_mib << 20;
  if (o.pids_limit > 0) step.limits.processes = o.pids_limit;
  if (::isatty(STDIN_FILENO) == 0) {
    HUSK_TRY_ASSIGN(std::string input, read_input("-"));
    step.stdin = job::Stdin{job::Stdin::Kind::kInline, std::move(input)};
  }
  j.steps.push_back(std::move(step));
  return j;
}

int run_exec(const ExecOptions& o) {
  auto job = exec_job(o);
  if (!job) {
    fmt::print(stderr, "husk: {}\n", job.error().message);
    return kExecHuskFailed;
  }
  job::RunnerOptions runner;
  if (o.verbose) runner.progress = [](std::string_view line) { fmt::print(stderr, "husk: {}\n", line); };
  if (auto sandbox = sandbox_options(o.sandbox, job->vm, runner); !sandbox) {
    fmt::print(stderr, "husk: {}\n", sandbox.error().message);
    return kExecHuskFailed;
  }
  take_over_signals();
  const job::JobResult result = job::run_job(*job, runner);
  if (result.seccomp_violation) {
    fmt::print(stderr, "husk: {}\n", result.message);
    return seccomp::kExitSeccompViolation;
  }
  if (result.steps.empty() || result.steps.front().verdict == job::Verdict::kInternal) {
    // Never ran, or husk / the VM failed under it.
    const std::string why = result.steps.empty() ? result.message : result.steps.front().message;
    fmt::print(stderr, "husk: {}\n", why.rfind("lost the guest agent", 0) == 0 ? why : "failed: " + why);
    if (!result.console_tail.empty()) fmt::print(stderr, "husk: last console lines:\n{}", result.console_tail);
    return kExecHuskFailed;
  }
  const job::RunResult& r = result.steps.front();
  if (r.exit_code == kExecNotFound || r.exit_code == kExecCannotRun) {
    if (r.signal == 0 && r.message.rfind("cannot run", 0) == 0) {
      fmt::print(stderr, "husk: {}\n", r.message);
      return r.exit_code;
    }
  }
  if (!r.limit.empty()) {
    fmt::print(stderr, "husk: {} ({})\n", r.limit,
               r.signal != 0 ? fmt::format("signal {}", r.signal) : fmt::format("exit {}", r.exit_code));
  } else if (r.signal != 0) {
    fmt::print(stderr, "husk: {}\n", r.message);
  }
  if (o.verbose) fmt::print(stderr, "husk: {} {}\n", job::verdict_code(r.verdict), r.message);
  if (r.signal != 0) return kExecSignalBase + r.signal;
  return r.exit_code;
}

}  // namespace

void add_exec_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ExecOptions>();
  CLI::App* cmd = app.add_subcommand("exec", "Boot a VM, run one command in it, and exit with its status");
  add_vm_flags(*cmd, o->vm, kVmShape | kVmCmdline | kVmDevices);
  cmd->add_option("--env", o->env, "KEY=VALUE for the command; repeatable")->allow_extra_args(false);
  cmd->add_option("--cwd", o->cwd, "working directory in the guest")->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s, "wall-time limit in seconds (kills the whole process tree)");
  cmd->add_option("--memory-limit", o->memory_limit_mib, "memory limit for the command in MiB (cgroup)");
  cmd->add_option("--pids-limit", o->pids_limit, "process-count limit for the command (cgroup)");
  cmd->add_option("--boot-timeout", o->boot_timeout_s, "seconds to wait for the guest agent")->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "report boot and shutdown on stderr");
  add_seccomp_flag(*cmd, o->sandbox);
  add_jail_flags(*cmd, o->sandbox);
  cmd->add_option("command", o->command, "the command and its arguments (after --)")->required();
  cmd->callback([o, &exit_code] { exit_code = run_exec(*o); });
}

}  // namespace husk::cli
