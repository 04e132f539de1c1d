// The JSON form of a JobResult (docs/result.schema.json describes it).
// Text that is not valid UTF-8 (program output, file names) is written
// with U+FFFD for the bad bytes; a file's exact name is its host_path on
// disk.
#pragma once

#include <string>

#include "runtime/job/job_result.h"

namespace husk::job {

[[nodiscard]] std::string result_json(const JobResult& result, const std::string& husk_version);

// The human summary: one line per run, the verdict last.
[[nodiscard]] std::string result_text(const JobResult& result);

}  // namespace husk::job
