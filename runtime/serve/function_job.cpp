#include "runtime/serve/function_job.h"

#include <fmt/format.h>

namespace husk::serve {

Result<void> prepare_function_job(job::Job& job, job::StartMode start) {
  if (job.judge || !job.cases.empty()) {
    return fail(fmt::format("{}: husk serve runs a function ([process], the request its stdin), not [[cases]]",
                            job.source));
  }
  if (job.steps.empty() || !job.steps.back().is_process) {
    return fail(fmt::format("{}: husk serve needs [process]: the request becomes its stdin, its stdout the response",
                            job.source));
  }
  job::Stdin& in = job.steps.back().stdin;
  if (in.kind == job::Stdin::Kind::kInline || in.kind == job::Stdin::Kind::kFile) {
    return fail(fmt::format("{}: husk serve gives [process] the request as its stdin: remove its stdin/stdin_file",
                            job.source));
  }
  in = job::Stdin{job::Stdin::Kind::kRequest, ""};
  if (job.outputs) {
    return fail(fmt::format("{}: husk serve does not collect [outputs]: every request would write the same folder; "
                            "print what the caller needs on stdout",
                            job.source));
  }
  job.vm.start = start;
  for (job::Step& step : job.steps) {
    if (!step.limits.stdout_max) step.limits.stdout_max = kDefaultResponseMax;
  }
  return {};
}

}  // namespace husk::serve
