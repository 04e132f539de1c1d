// spawn_process: posix_spawn with the clean start every helper program husk
// runs gets (mkfs.ext4, passt): stdin from /dev/null, stdout and stderr into
// one descriptor, only the descriptors asked for open, every signal at its
// default disposition and nothing blocked.
//
// The signal part matters because husk's threads block signals for a
// signalfd and may ignore SIGPIPE; a child would inherit both across exec and
// then not die on SIGTERM or not see SIGPIPE.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "runtime/common/result.h"

namespace husk {

// One of the caller's descriptors that the child gets at a fixed number.
struct FdMapping {
  int source = -1;  // the caller's descriptor; close-on-exec or not
  int target = -1;  // the child's number for it, 3 or above
};

struct SpawnOptions {
  // The child's stdout and stderr; -1 sends both to /dev/null.
  int output_fd = -1;
  // Descriptors the child gets besides 0, 1 and 2. Every other descriptor is
  // closed in the child, whatever its close-on-exec flag.
  std::vector<FdMapping> extra_fds{};
  // A process group of its own (pgid = pid), so signals sent to the caller's
  // group (a terminal's ^C, a supervisor's kill(-pgid)) do not reach it.
  bool new_process_group = false;
};

// Starts argv[0] (a path: no PATH search, no shell) with argv and the
// caller's environment and returns its pid without waiting; the caller reaps
// it. The caller's descriptors are not changed. Fails with argv[0] and the
// errno in the error when the program cannot be executed (glibc reports exec
// failures from the child), and without starting anything when argv is empty
// or a target is below 3 or repeated.
[[nodiscard]] Result<pid_t> spawn_process(const std::vector<std::string>& argv, const SpawnOptions& options);

}  // namespace husk
