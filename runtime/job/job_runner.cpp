#include "runtime/job/job_runner.h"

#include <time.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/agent/vm_session.h"
#include "runtime/common/file.h"
#include "runtime/job/compare.h"
#include "runtime/job/file_transfer.h"
#include "runtime/job/run_program.h"
#include "runtime/job/units.h"
#include "runtime/snapshot/snapshot_cache.h"

namespace husk::job {

namespace {

constexpr const char* kCmdline = "console=ttyS0 reboot=k panic=-1 quiet";
constexpr const char* kCheckDir = "/tmp/husk-check";
constexpr auto kCheckerWall = std::chrono::seconds(30);

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

class Runner {
 public:
  Runner(const Job& job, const RunnerOptions& options) : job_(job), options_(options) {}
  // On `vm` when given (started ahead by start_vm), else on one started here.
  JobResult run(std::unique_ptr<agent::VmSession> vm);

 private:
  void say(const std::string& line) {
    if (options_.progress) options_.progress(line);
  }
  // The stdin a Step or Case names, read now.
  Result<std::optional<std::string>> stdin_of(const Stdin& s);
  ProgramRun program_for(const Step& step, RunKind kind);
  // Records a run; false when the job cannot go on (VM lost, output closed).
  bool record(ProgramOutcome& outcome, std::vector<RunResult>& into);
  void run_steps();
  void run_cases();
  // Judges one case's output (checker in the guest, or a comparison).
  void judge_case(const Case& c, const std::optional<std::string>& input, const std::string& output, RunResult& r);
  void fail_job(Verdict v, std::string message) {
    if (result_.verdict == Verdict::kOk) {
      result_.verdict = v;
      result_.message = std::move(message);
    }
  }

  const Job& job_;
  const RunnerOptions& options_;
  JobResult result_;
  std::unique_ptr<agent::VmSession> session_;
  Clock::time_point start_;
  bool stop_ = false;  // nothing more can run
};

Result<std::optional<std::string>> Runner::stdin_of(const Stdin& s) {
  switch (s.kind) {
    case Stdin::Kind::kNone: return std::optional<std::string>();
    case Stdin::Kind::kInline: return std::optional<std::string>(s.value);
    case Stdin::Kind::kRequest: return std::optional<std::string>(options_.request);
    case Stdin::Kind::kFile: {
      HUSK_TRY_ASSIGN(std::string data, read_text_file(s.value));
      return std::optional<std::string>(std::move(data));
    }
  }
  return std::optional<std::string>();
}

ProgramRun Runner::program_for(const Step& step, RunKind kind) {
  ProgramRun p;
  p.name = step.name;
  p.kind = kind;
  p.argv = step.argv;
  p.env = step.env;
  p.cwd = step.cwd;
  p.uid = step.uid;
  p.gid = step.gid;
  p.limits = step.limits;
  return p;
}

bool Runner::record(ProgramOutcome& outcome, std::vector<RunResult>& into) {
  const RunResult& r = outcome.result;
  say(fmt::format("{} '{}': {}{}{} ({:.0f} ms)", r.kind == RunKind::kCase ? "case" : "step", r.name,
                  verdict_code(r.verdict), r.message.empty() ? "" : ": ", r.message, r.end_ms - r.start_ms));
  into.push_back(std::move(outcome.result));
  if (outcome.vm_lost || outcome.output_closed) {
    stop_ = true;
    fail_job(into.back().verdict, fmt::format("'{}': {}", into.back().name, into.back().message));
    return false;
  }
  return true;
}

void Runner::run_steps() {
  for (const Step& step : job_.steps) {
    if (stop_) return;
    ProgramRun p = program_for(step, step.is_process ? RunKind::kProcess : RunKind::kStep);
    auto input = stdin_of(step.stdin);
    if (!input) {
      fail_job(Verdict::kInternal, input.error().message);
      stop_ = true;
      return;
    }
    p.stdin_data = std::move(*input);
    p.stdout_fd = options_.stdout_fd;
    p.stderr_fd = options_.stderr_fd;
    say(fmt::format("step '{}' starts", step.name));
    ProgramOutcome outcome = run_program(*session_, p, start_);
    const Verdict v = outcome.result.verdict;
    const std::string message = fmt::format("step '{}': {}", step.name, outcome.result.message);
    if (!record(outcome, result_.steps)) return;
    if (v != Verdict::kOk && !step.continue_on_error) {
      fail_job(v, message);
      stop_ = true;  // later steps, the process and the cases need this one
      return;
    }
  }
}

void Runner::judge_case(const Case& c, const std::optional<std::string>& input, const std::string& output,
                        RunResult& r) {
  if (c.compare != Compare::kChecker) {
    if (c.expected && !outputs_match(c.compare, *c.expected, output)) {
      r.verdict = Verdict::kWrongAnswer;
      r.message = fmt::format("{} (compare: {})", first_difference(c.compare, *c.expected, output),
                              compare_name(c.compare));
    }
    return;
  }
  agent::AgentClient& agent = session_->agent();
  const std::string dir = kCheckDir;
  for (const auto& [name, data] : {std::pair{"input", input.value_or("")}, std::pair{"expected", c.expected.value_or("")},
                                   std::pair{"output", output}}) {
    if (auto w = agent.write_file(dir + "/" + name, data, 0644, true); !w) {
      r.verdict = Verdict::kInternal;
      r.message = fmt::format("cannot give the checker its files: {}", w.error().message);
      return;
    }
  }
  Step checker;
  checker.name = c.name + " (checker)";
  checker.argv = job_.judge->checker;
  checker.argv.insert(checker.argv.end(), {dir + "/input", dir + "/expected", dir + "/output"});
  checker.env = job_.judge->program.env;
  checker.limits.wall_time = kCheckerWall;
  ProgramRun p = program_for(checker, RunKind::kCase);
  ProgramOutcome verdict = run_program(*session_, p, start_);
  if (verdict.vm_lost) stop_ = true;
  if (verdict.result.verdict == Verdict::kOk) return;
  if (verdict.result.verdict == Verdict::kRuntimeError && verdict.result.exit_code == 1) {
    r.verdict = Verdict::kWrongAnswer;
    const std::string& said = verdict.result.stderr_head.empty() ? verdict.result.stdout_head : verdict.result.stderr_head;
    r.message = said.empty() ? "the checker refused the output" : "checker: " + said.substr(0, 200);
    return;
  }
  r.verdict = Verdict::kInternal;
  r.message = fmt::format("the checker failed: {} {}", verdict.result.message, verdict.result.stderr_head.substr(0, 200));
}

void Runner::run_cases() {
  const Judge& judge = *job_.judge;
  for (const Case& c : job_.cases) {
    if (stop_) return;
    ProgramRun p = program_for(judge.program, RunKind::kCase);
    p.name = c.name;
    p.limits = c.limits;
    p.keep_stdout = true;
    auto input = stdin_of(c.stdin.kind == Stdin::Kind::kNone ? judge.program.stdin : c.stdin);
    if (!input) {
      fail_job(Verdict::kInternal, input.error().message);
      stop_ = true;
      return;
    }
    p.stdin_data = *input;
    ProgramOutcome outcome = run_program(*session_, p, start_);
    outcome.result.compare = c.expected || c.compare == Compare::kChecker ? compare_name(c.compare) : "none";
    if (outcome.result.verdict == Verdict::kOk && !outcome.vm_lost) {
      judge_case(c, *input, outcome.stdout_all, outcome.result);
    }
    const Verdict v = outcome.result.verdict;
    const std::string message = fmt::format("case '{}': {}", c.name, outcome.result.message);
    if (!record(outcome, result_.cases)) return;
    if (v != Verdict::kOk) {
      fail_job(v, message);
      if (judge.stop_on_failure) return;
    }
  }
}

JobResult Runner::run(std::unique_ptr<agent::VmSession> vm) {
  start_ = Clock::now();
  result_.job = job_.source;
  {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    result_.timeline.vmm_start_unix_ms = static_cast<double>(now.tv_sec) * 1e3 + static_cast<double>(now.tv_nsec) / 1e6;
  }
  if (!vm) {
    say(job_.vm.start == StartMode::kSnapshot ? "restoring the VM from its snapshot" : "booting the VM");
    auto started = start_vm(job_, options_);
    if (!started) {
      result_.verdict = Verdict::kInternal;
      result_.message = fmt::format("the VM did not start: {}", started.error().message);
      result_.timeline.end_ms = ms_since(start_);
      return std::move(result_);
    }
    vm = std::move(*started);
  }
  session_ = std::move(vm);
  result_.timeline.start = session_->restored() ? "snapshot" : "boot";
  result_.timeline.agent_ready_ms = static_cast<double>(session_->boot_time().count());
  say(fmt::format("agent ready after {} ms", session_->boot_time().count()));

  agent::AgentClient& agent = session_->agent();
  const auto wall_now = std::chrono::system_clock::now().time_since_epoch();
  (void)agent.set_clock(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(wall_now).count()));
  (void)agent.set_hostname(job_.hostname.empty() ? "husk" : job_.hostname);
  if (auto up = upload_files(agent, job_.files); !up) {
    fail_job(Verdict::kInternal, fmt::format("files: {}", up.error().message));
    stop_ = true;
  }
  run_steps();
  if (job_.judge) run_cases();
  if (job_.outputs && !session_->vm_stopped() && agent.usable()) {
    if (auto got = collect_outputs(agent, *job_.outputs, result_); !got) {
      fail_job(Verdict::kInternal, got.error().message);
    }
  }
  if (!session_->restored() && !session_->vm_stopped() && agent.usable()) {
    // The guest's own boot moments, off the critical path: after the job.
    if (auto marks = agent.boot_info()) {
      for (const agent::proto::BootMark& m : *marks) {
        result_.timeline.guest.push_back({m.name, static_cast<double>(m.at_us) / 1e3});
      }
    }
  }
  const bool vm_gone = session_->vm_stopped();
  if (result_.verdict == Verdict::kInternal || vm_gone) result_.console_tail = session_->console_tail(8);
  result_.timeline.shutdown_ms = ms_since(start_);
  auto exit = session_->finish();
  // The VMM process tells its first KVM_RUN with its exit.
  const int64_t start_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(start_.time_since_epoch()).count();
  if (const vmm::BootTimeline t = session_->timeline(); t.first_run_ns != 0) {
    result_.timeline.kernel_entry_ms = static_cast<double>(t.first_run_ns - start_ns) / 1e6;
    result_.timeline.vmm_start_cpu_ms = static_cast<double>(t.first_run_cpu_ns) / 1e6;
    // The VMM's own start, phase by phase (those it went through).
    for (size_t i = 0; i < vmm::kBootPhaseCount; ++i) {
      if (t.phases[i].ns == 0) continue;
      result_.timeline.host.push_back(HostPhase{vmm::boot_phase_name(static_cast<vmm::BootPhase>(i)),
                                                static_cast<double>(t.phases[i].ns - start_ns) / 1e6,
                                                static_cast<double>(t.phases[i].cpu_ns) / 1e6});
    }
    result_.timeline.host.push_back(HostPhase{"first_kvm_run", result_.timeline.kernel_entry_ms,
                                              result_.timeline.vmm_start_cpu_ms});
  }
  result_.seccomp_violation = exit && exit->reason == vmm::ExitReason::kSeccompViolation;
  if (job_.network.mode != net::NetMode::kNone) {
    // No report only when the VMM died without one: the counts are lost, not zero.
    auto report = session_->vmm().net_report();
    if (!report) say("the VMM sent no network report");
    result_.network = NetworkResult{net::mode_name(job_.network.mode), net::backend_name(job_.network.backend),
                                    report.value_or(net::NetReport{})};
  }
  if (!session_->shutdown_failure().empty()) {
    // Every run ended, but the guest then kept its agent from shutting it
    // down (the VM was stopped at the agent's call deadline instead).
    fail_job(Verdict::kInternal, fmt::format("the guest did not shut down through its agent ({}): the VM was stopped",
                                             session_->shutdown_failure()));
    if (result_.console_tail.empty()) result_.console_tail = session_->console_tail(8);
  }
  if (exit && exit->reason == vmm::ExitReason::kSignal) {
    result_.verdict = Verdict::kInternal;
    result_.message = fmt::format("interrupted: {}", exit->detail);
    // The run the signal cut short says so, not just "lost the agent".
    for (auto* runs : {&result_.steps, &result_.cases}) {
      if (!runs->empty() && runs->back().verdict == Verdict::kInternal) runs->back().message = result_.message;
    }
  } else if (exit && !vmm::is_clean_exit(exit->reason) && exit->reason != vmm::ExitReason::kHostStop) {
    const std::string vm_failed = fmt::format("the VM failed ({}): {}", vmm::exit_reason_name(exit->reason), exit->detail);
    // The run it took down says why.
    for (auto* runs : {&result_.steps, &result_.cases}) {
      if (!runs->empty() && runs->back().verdict == Verdict::kInternal) runs->back().message += " (" + vm_failed + ")";
    }
    fail_job(Verdict::kInternal, vm_failed);
    if (!exit->diagnostics.empty()) result_.console_tail += exit->diagnostics;
  }
  session_.reset();
  result_.timeline.end_ms = ms_since(start_);
  return std::move(result_);
}

}  // namespace

vmm::VmConfig vm_config_for(const VmSpec& vm) {
  vmm::VmConfig config;
  config.kernel_path = vm.kernel;
  config.initrd_path = vm.initramfs;
  config.cmdline = vm.cmdline.empty() ? kCmdline : vm.cmdline;
  config.vcpus = vm.vcpus;
  config.memory_mib = vm.memory_mib;
  config.huge_pages = vm.huge_pages;
  config.rng = true;
  if (vm.root_disk) {
    config.disks.push_back(*vm.root_disk);
    config.cmdline += " husk.root=/dev/vda";
    if (vm.root_disk->mode == vmm::DiskMode::kPersistent) config.cmdline += " husk.rootflags=rw";
  }
  config.disks.insert(config.disks.end(), vm.disks.begin(), vm.disks.end());
  return config;
}

namespace {
agent::SessionOptions session_options_for(const Job& job, const RunnerOptions& options) {
  agent::SessionOptions session_options;
  session_options.boot_timeout = job.vm.boot_timeout;
  session_options.jail = options.jail;
  session_options.confine_caller = options.confine_caller;
  session_options.agent_as_init = job.vm.stock_initramfs;
  if (job.network.mode != net::NetMode::kNone) session_options.network = job.network;
  return session_options;
}
}  // namespace

Result<agent::RestoreSource> prepare_snapshot(const Job& job, const RunnerOptions& options) {
  if (!options.snapshot_dir.empty()) return snapshot::use_snapshot(vm_config_for(job.vm), options.snapshot_dir);
  return snapshot::ensure_snapshot(vm_config_for(job.vm), options.snapshot_cache, session_options_for(job, options));
}

Result<std::unique_ptr<agent::VmSession>> start_vm(const Job& job, const RunnerOptions& options) {
  agent::SessionOptions session_options = session_options_for(job, options);
  if (job.vm.start == StartMode::kSnapshot && session_options.network) {
    return fail("a network is not available with a VM restored from a snapshot yet: start it with a boot (--cold)");
  }
  if (job.vm.start == StartMode::kSnapshot) {
    HUSK_TRY_ASSIGN(session_options.restore, prepare_snapshot(job, options));
  }
  return agent::VmSession::start(vm_config_for(job.vm), session_options);
}

JobResult run_job(const Job& job, const RunnerOptions& options) { return Runner(job, options).run(nullptr); }

JobResult run_job_on(const Job& job, std::unique_ptr<agent::VmSession> vm, const RunnerOptions& options) {
  return Runner(job, options).run(std::move(vm));
}

}  // namespace husk::job
