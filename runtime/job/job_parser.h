// Job files (docs/job-file.md) to Job values, with toml++. Validation is
// strict and complete: every problem is reported, each as
// "FILE:LINE:COLUMN: KEY: what was expected" (unknown keys with a
// suggestion), so one run of `husk validate` shows them all.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "runtime/common/result.h"
#include "runtime/job/job.h"

namespace husk::job {

struct LoadOptions {
  // Filled in for [vm] keys the job leaves out (the guest `make` builds).
  std::string default_kernel;
  std::string default_initramfs;
  // husk's own environment, for inherit_env.
  std::map<std::string, std::string> host_env;
  // `husk run --input`: the process's stdin becomes the request.
  bool has_request_input = false;
};

// Reads and validates `path`. Relative paths in the job resolve against
// its folder. The error message holds one line per problem.
[[nodiscard]] Result<Job> load_job_file(const std::string& path, const LoadOptions& options);

// The same for text already in memory; `source_path` names it in messages
// and gives the folder relative paths resolve against.
[[nodiscard]] Result<Job> parse_job(std::string_view text, const std::string& source_path,
                                    const LoadOptions& options);

}  // namespace husk::job
