// The jail's cgroup v2 part (docs/jail.md, "cgroup"): every jailed VMM gets
// its own cgroup, `<base>/<husk pid>-<n>`, with memory.max, memory.swap.max
// = 0, pids.max and cpu.max. <base> is /sys/fs/cgroup/husk when husk is
// root, and the delegated cgroup husk was started in when it is not (husk
// then moves itself into the leaf `<base>/husk-main`, because a cgroup that
// holds processes cannot hand controllers down). Private to the jail.
#pragma once

#include <sys/types.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/jail/jail.h"

namespace husk::jail::cgroup {

inline constexpr const char* kMount = "/sys/fs/cgroup";
inline constexpr std::array<std::string_view, 3> kControllers{"memory", "cpu", "pids"};
// The folder of root husk's jail cgroups, under kMount.
inline constexpr const char* kRootBase = "husk";
// The leaf an unprivileged husk moves itself into, under its delegated cgroup.
inline constexpr const char* kSelfLeaf = "husk-main";
// cpu.max's period, in microseconds.
inline constexpr uint64_t kCpuPeriodUs = 100000;

// What this host lacks for jail cgroups, one item per problem in words a
// user can act on; empty when nothing is missing. Reads only.
[[nodiscard]] std::vector<std::string> problems(bool unprivileged);

// The folder the jail cgroups of this process go into (see above).
[[nodiscard]] Result<std::string> base(bool unprivileged);

// Parent side, before the fork: makes the base ready (controllers handed
// down to it; an unprivileged husk moves itself into its leaf), then a new
// `<base>/<pid>-<n>` with the limits. Returns its path.
[[nodiscard]] Result<std::string> create(const CgroupLimits& limits, bool unprivileged);

// In the forked child: moves the calling process into `path`.
[[nodiscard]] Result<void> join(const std::string& path);

// Removes one jail cgroup whose jail has ended: rmdir, retried while its
// last processes exit; whatever is still inside after a while is killed
// (cgroup.kill). Returns whether it is gone.
bool remove(const std::string& path);

// The cgroup of the jail whose parent-side pid is `pid`.
void remember(pid_t pid, std::string path);
[[nodiscard]] std::optional<std::string> forget(pid_t pid);

// Removes the `<pid>-<n>` cgroups under the base whose husk process is gone;
// returns how many. Never fails: problems are logged at debug level.
int sweep(bool unprivileged);

}  // namespace husk::jail::cgroup
