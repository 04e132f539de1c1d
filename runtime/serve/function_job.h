// What makes a job a function `husk serve` can run (docs/serve.md, "The
// function"), checked once before serving: a [process] with no stdin of
// its own (the request becomes its stdin, as with `husk run --input`), no
// [[cases]], and no [outputs] (every request would write the same host
// folder). The job is then adapted: its VMs start as `start` says, and
// each run's stdout is capped at kDefaultResponseMax unless the job caps it
// itself (the response is held in memory).
#pragma once

#include <cstdint>

#include "runtime/common/result.h"
#include "runtime/job/job.h"

namespace husk::serve {

inline constexpr uint64_t kDefaultResponseMax = 64ull << 20;

[[nodiscard]] Result<void> prepare_function_job(job::Job& job, job::StartMode start);

}  // namespace husk::serve
