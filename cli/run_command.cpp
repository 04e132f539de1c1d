#include "cli/run_command.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/job_io.h"
#include "cli/sandbox_flags.h"
#include "cli/version.h"
#include "cli/vm_options.h"
#include "runtime/job/job_runner.h"
#include "runtime/job/result_json.h"
#include "seccomp/violation.h"

namespace husk::cli {

namespace {

struct RunOptions {
  std::string job_file;
  std::string input;        // --input FILE|-
  bool json = false;
  std::string result_path;  // --result
  bool verbose = false;
  VmFlags vm;
  SandboxFlags sandbox;
};

bool write_text(const std::string& path, const std::string& text, FILE* fallback) {
  if (path.empty()) {
    std::fwrite(text.data(), 1, text.size(), fallback);
    std::fflush(fallback);
    return true;
  }
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

int run(RunOptions& o) {
  auto job = load_job_with_flags(o.job_file, o.vm, !o.input.empty());
  if (!job) {
    fmt::print(stderr, "{}\n", job.error().message);
    return kExitUsage;
  }
  if (o.json) job->result.format = job::ResultFormat::kJson;
  if (!o.result_path.empty()) job->result.path = o.result_path;
  job::RunnerOptions runner;
  runner.snapshot_cache = o.vm.snapshot_cache;
  runner.snapshot_dir = o.vm.snapshot_dir;
  if (!o.input.empty()) {
    auto request = read_input(o.input);
    if (!request) {
      fmt::print(stderr, "husk: --input: {}\n", request.error().message);
      return kExitUsage;
    }
    runner.request = std::move(*request);
  }
  const bool json_on_stdout = job->result.format == job::ResultFormat::kJson && job->result.path.empty();
  if (json_on_stdout) runner.stdout_fd = -1;  // stdout is the result's
  if (o.verbose) runner.progress = [](std::string_view line) { fmt::print(stderr, "husk: {}\n", line); };
  if (auto sandbox = sandbox_options(o.sandbox, job->vm, runner); !sandbox) {
    fmt::print(stderr, "husk: {}\n", sandbox.error().message);
    return kExitUsage;
  }
  take_over_signals();

  const job::JobResult result = job::run_job(*job, runner);
  const bool json = job->result.format == job::ResultFormat::kJson;
  const std::string text = json ? job::result_json(result, kHuskVersion) : job::result_text(result);
  if (!write_text(job->result.path, text, json ? stdout : stderr)) {
    fmt::print(stderr, "husk: cannot write the result to {}: {}\n", job->result.path, std::strerror(errno));
    return kExitInternal;
  }
  if (json && !job->result.path.empty()) {
    fmt::print(stderr, "husk: {} {} (result in {})\n", job::verdict_code(result.verdict), result.message,
               job->result.path);
  }
  if (result.seccomp_violation) return seccomp::kExitSeccompViolation;
  return result.verdict == job::Verdict::kOk ? kExitOk : kExitFailed;
}

int validate(const std::vector<std::string>& files) {
  int code = kExitOk;
  for (const std::string& file : files) {
    auto job = job::load_job_file(file, load_options(false));
    if (!job) {
      fmt::print(stderr, "{}\n", job.error().message);
      code = kExitUsage;
      continue;
    }
    fmt::print("{}: valid ({} step{}{})\n", file, job->steps.size(), job->steps.size() == 1 ? "" : "s",
               job->cases.empty() ? "" : fmt::format(", {} cases", job->cases.size()));
  }
  return code;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Boot a VM, run a TOML job file in it, and report the verdict");
  cmd->add_option("job", o->job_file, "the job file (docs/job-file.md)")->required();
  cmd->add_option("--input", o->input, "the request: FILE, or - for stdin; becomes [process]'s stdin");
  cmd->add_flag("--json", o->json, "write the result as JSON (docs/result.schema.json)");
  cmd->add_option("--result", o->result_path, "write the result to this file instead of stdout/stderr");
  cmd->add_flag("-v,--verbose", o->verbose, "report boot and each run on stderr");
  add_vm_flags(*cmd, o->vm, kVmShape | kVmStart);
  add_seccomp_flag(*cmd, o->sandbox);
  add_jail_flags(*cmd, o->sandbox);
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

void add_validate_command(CLI::App& app, int& exit_code) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("validate", "Check job files without booting (exit 0 valid, 2 not)");
  cmd->add_option("job", *files, "job files")->required();
  cmd->callback([files, &exit_code] { exit_code = validate(*files); });
}

}  // namespace husk::cli
