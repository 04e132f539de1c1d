// One request of `husk serve` on one VM: the request body as the job's
// process's stdin (Stdin::kRequest), its stdout (and that of any steps
// before it, as `husk run --input` prints them) collected in a memory file
// for the response, the job run by job::run_job_on, which shuts the VM down
// after. Past the request's deadline the VMM process is killed through a
// pidfd (which cannot name a reused pid), the run ends as the VM goes, and
// the result says TO.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "runtime/agent/vm_session.h"
#include "runtime/common/deadline.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/job/job.h"
#include "runtime/job/job_result.h"
#include "runtime/job/job_runner.h"

namespace husk::serve {

// A VM of the pool, started by job::start_vm.
struct PooledVm {
  std::unique_ptr<agent::VmSession> session;
  // The VMM process (with a jail: the jail's outer process, whose death
  // takes the VMM with it), opened while the process could not yet have
  // been reaped: what --request-timeout kills.
  UniqueFd pidfd;
};

// Starts one: job::start_vm, then the pidfd. Called on the pool's thread
// (vm_pool.h).
[[nodiscard]] Result<std::unique_ptr<PooledVm>> start_pooled_vm(const job::Job& job,
                                                                 const job::RunnerOptions& options);

// Whether a ready VM can still take a request (its VM still runs).
[[nodiscard]] bool pooled_vm_usable(PooledVm& vm);

struct CallOutcome {
  job::JobResult result;
  std::string stdout_data;  // the response: the job's stdout, up to its caps
  bool ran = false;         // a VM took the request (else `result` says why none did)
  bool timed_out = false;   // the deadline passed and the VM was killed (result: TO)
};

// Runs the request on `vm` (which is gone after). `timeout` is
// --request-timeout, for the message.
[[nodiscard]] CallOutcome call_function(const job::Job& job, std::unique_ptr<PooledVm> vm, std::string request,
                                        Deadline deadline, std::chrono::milliseconds timeout);

// The outcome of a request no VM took: `verdict` and why.
[[nodiscard]] CallOutcome no_vm_outcome(const job::Job& job, job::Verdict verdict, std::string message);

}  // namespace husk::serve
