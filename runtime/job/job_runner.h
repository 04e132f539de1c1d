// run_job: a Job from boot to verdict. Boots the VM (agent::VmSession),
// uploads the files, runs the steps, the process or the cases, enforces
// the limits (the agent's, and the host's own deadline and stream caps),
// collects the outputs, shuts the VM down and returns a JobResult. Every
// failure of husk or the VM is a result with verdict XX, never a throw.
#pragma once

#include <unistd.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/agent/vm_session.h"
#include "runtime/jail/jail.h"
#include "runtime/job/job.h"
#include "runtime/job/job_result.h"

namespace husk::job {

struct RunnerOptions {
  // Steps' and the process's output streams here as it comes; -1: kept
  // only in the result (cases never stream).
  int stdout_fd = STDOUT_FILENO;
  int stderr_fd = STDERR_FILENO;
  // The request (`husk run --input`), for a process whose stdin is kRequest.
  std::string request;
  // Progress lines (-v): boot, each run's start and end.
  std::function<void(std::string_view)> progress;
  // The VMM process's jail (none: not jailed).
  std::optional<jail::JailSpec> jail;
  // The calling thread enters the seccomp class "main" once the VMM
  // process is forked (husk's CLI; not a test that goes on forking).
  bool confine_caller = false;
  // Where snapshots are kept (`[vm] start = "snapshot"`); empty: the
  // default (snapshot::default_cache_dir()).
  std::string snapshot_cache;
  // Restore exactly this snapshot folder (`husk run --snapshot DIR`); it
  // must be of the job's configuration.
  std::string snapshot_dir;
};

[[nodiscard]] JobResult run_job(const Job& job, const RunnerOptions& options);

// The VM for `job`, booted or restored from its snapshot as job.vm.start
// says (the snapshot is made first when the cache has none), its agent
// ready. What run_job does first; a pool (`husk serve`) calls it ahead of
// the requests.
[[nodiscard]] Result<std::unique_ptr<agent::VmSession>> start_vm(const Job& job, const RunnerOptions& options);
// The snapshot a `start = "snapshot"` VM of `job` starts from, made now if
// the cache (options.snapshot_cache) has none for its configuration.
[[nodiscard]] Result<agent::RestoreSource> prepare_snapshot(const Job& job, const RunnerOptions& options);
// run_job on a VM start_vm gave; it is shut down and gone after.
[[nodiscard]] JobResult run_job_on(const Job& job, std::unique_ptr<agent::VmSession> vm, const RunnerOptions& options);

// The VM configuration a job's VmSpec gives (the agent's vsock and console
// are VmSession's business).
[[nodiscard]] vmm::VmConfig vm_config_for(const VmSpec& vm);

}  // namespace husk::job
