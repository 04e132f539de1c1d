// What `husk run` and `husk exec` share around a job: reading a request or
// piped stdin, the LoadOptions for this host, and the signals a running
// job is stopped by.
#pragma once

#include <string>

#include "runtime/common/result.h"
#include "runtime/job/job_parser.h"

namespace husk::cli {

// All of stdin ("-") or of a file.
[[nodiscard]] Result<std::string> read_input(const std::string& path);

// The default guest, this process's environment.
[[nodiscard]] job::LoadOptions load_options(bool has_request_input);

// SIGINT, SIGTERM, SIGHUP (and SIGQUIT) are forwarded to the VMM process
// from here on (runtime/common/signals.h): they stop the VM, and the job
// ends with verdict XX ("interrupted"), its folders removed. SIGPIPE is
// ignored: a closed stdout is an EPIPE the runner handles.
void take_over_signals();

}  // namespace husk::cli
