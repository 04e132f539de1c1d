// Files between the host and a job's guest: [[files]] up before anything
// runs, [outputs] back after. Folders go whole; outputs are found by the
// guest's shell (globs) and listed NUL-separated, so names with newlines
// or non-UTF-8 bytes survive; every path that comes back is checked to stay
// inside the host folder.
#pragma once

#include <vector>

#include "runtime/agent/agent_client.h"
#include "runtime/common/result.h"
#include "runtime/job/job.h"
#include "runtime/job/job_result.h"

namespace husk::job {

[[nodiscard]] Result<void> upload_files(agent::AgentClient& agent, const std::vector<FileUpload>& files);

// Copies what `outputs` names into outputs.dir (guest path under it), up
// to outputs.max_total bytes in all; fills the result's files.
[[nodiscard]] Result<void> collect_outputs(agent::AgentClient& agent, const Outputs& outputs, JobResult& result);

}  // namespace husk::job
