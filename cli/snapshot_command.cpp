#include "cli/snapshot_command.h"

#include <chrono>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/job_io.h"
#include "cli/sandbox_flags.h"
#include "cli/vm_options.h"
#include "runtime/job/job_runner.h"
#include "runtime/snapshot/snapshot_cache.h"

namespace husk::cli {

namespace {

struct SnapshotOptions {
  std::string job_file;
  std::string out;  // --out DIR: this folder instead of the cache
  VmFlags vm;
  SandboxFlags sandbox;
};

int create(SnapshotOptions& o) {
  auto job = load_job_with_flags(o.job_file, o.vm, false);
  if (!job) {
    fmt::print(stderr, "{}\n", job.error().message);
    return kExitUsage;
  }
  job::RunnerOptions runner;
  runner.snapshot_cache = o.vm.snapshot_cache;
  if (auto sandbox = sandbox_options(o.sandbox, job->vm, runner); !sandbox) {
    fmt::print(stderr, "husk: {}\n", sandbox.error().message);
    return kExitUsage;
  }
  take_over_signals();
  const auto start = std::chrono::steady_clock::now();
  std::string dir;
  if (!o.out.empty()) {
    agent::SessionOptions session;
    session.boot_timeout = job->vm.boot_timeout;
    session.jail = runner.jail;
    session.agent_as_init = job->vm.stock_initramfs;
    if (std::filesystem::exists(o.out)) {
      fmt::print(stderr, "husk: --out {} exists; give a new folder\n", o.out);
      return kExitUsage;
    }
    if (auto made = snapshot::create_snapshot(job::vm_config_for(job->vm), o.out, session); !made) {
      std::error_code ec;
      std::filesystem::remove_all(o.out, ec);  // nothing half made stays
      fmt::print(stderr, "husk: snapshot: {}\n", made.error().message);
      return kExitInternal;
    }
    dir = o.out;
  } else {
    auto made = job::prepare_snapshot(*job, runner);
    if (!made) {
      fmt::print(stderr, "husk: snapshot: {}\n", made.error().message);
      return kExitInternal;
    }
    dir = std::filesystem::path(made->state_path).parent_path().string();
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  fmt::print(stderr, "husk: snapshot ready in {} ms\n", ms.count());
  fmt::print("{}\n", dir);
  return kExitOk;
}

}  // namespace

void add_snapshot_command(CLI::App& app, int& exit_code) {
  CLI::App* snapshot = app.add_subcommand("snapshot", "VM snapshots for warm starts (docs/snapshots.md)");
  snapshot->require_subcommand(1);
  auto o = std::make_shared<SnapshotOptions>();
  CLI::App* cmd = snapshot->add_subcommand(
      "create", "Boot a job's VM, wait for its agent, and save it as the snapshot its warm starts restore");
  cmd->add_option("job", o->job_file, "the job file whose [vm] is snapshotted")->required();
  cmd->add_option("--out", o->out, "write the snapshot into this new folder instead of the cache");
  add_vm_flags(*cmd, o->vm, kVmShape);
  cmd->add_option("--snapshot-cache", o->vm.snapshot_cache,
                  "the cache to make it in (default $HUSK_SNAPSHOT_CACHE, else ~/.cache/husk/snapshots)");
  add_jail_flags(*cmd, o->sandbox);
  add_seccomp_flag(*cmd, o->sandbox);
  cmd->callback([o, &exit_code] { exit_code = create(*o); });
}

}  // namespace husk::cli
