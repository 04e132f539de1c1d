// The jail of a VMM process (design.md, trust boundaries; Firecracker's
// jailer): new mount, PID, network, IPC, UTS and cgroup namespaces; "/" is
// a minimal folder that holds only what the VM needs (the files bound into
// it, its sockets, /dev/kvm); no capabilities, an unprivileged uid and gid,
// rlimits, no_new_privs; and its own cgroup v2 with memory, CPU and pids
// limits. Open, then drop, then run: fork_into_jail() returns in the jailed
// process still privileged (root in its namespaces, "/" already the jail
// folder) so that it can open /dev/kvm and the images; drop_privileges()
// then takes everything away before any guest code runs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/result.h"

namespace husk::jail {

// A host file or device node made visible inside the jail at `target`
// (an absolute path inside the jail, e.g. "/dev/kvm", "/kernel").
struct Bind {
  std::string source;
  std::string target;
  bool read_only = true;
};

struct CgroupLimits {
  // 0 means no limit ("max").
  uint64_t memory_max_bytes = 0;  // memory.max (memory.swap.max is 0)
  uint32_t pids_max = 0;          // pids.max (threads count too)
  uint32_t cpu_max_percent = 0;   // cpu.max: percent of one CPU (200 = two CPUs)
};

struct JailSpec {
  // The host folder that becomes "/" (exists; not owned by uid). As root the
  // jail makes it mode 0711: uid may pass through it but not create or
  // replace anything in it.
  std::string root;
  std::vector<Bind> binds;
  uid_t uid = 65534;
  gid_t gid = 65534;
  // Soft = hard limits set before the drop.
  uint64_t max_open_files = 4096;     // RLIMIT_NOFILE
  // RLIMIT_FSIZE: the kernel refuses (SIGXFSZ, then EFBIG) every write at
  // an offset at or past it, in any file, disk images opened before the
  // drop too. UINT64_MAX for none.
  uint64_t max_file_size = 1ull << 30;
  CgroupLimits cgroup;
  // Whether to use a user namespace (unprivileged husk). Set by check().
  bool user_namespace = false;
};

// What this host offers the jail, and what is missing, in words a user can
// act on ("cgroup v2 is not mounted at /sys/fs/cgroup", "unprivileged user
// namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)").
// Sets spec.user_namespace = (husk is not root); in that mode spec.uid and
// spec.gid become husk's own euid and egid (the only ids a user namespace
// of an unprivileged process can map). Forks a trial child: call it while
// single-threaded.
[[nodiscard]] Result<void> check(JailSpec& spec);

struct Forked {
  pid_t pid = 0;       // in the parent: the process to wait for; 0 in the jailed process
  bool jailed = false; // true in the jailed process
};

// Forks the jailed process. In the parent: {pid, false}; the pid's exit
// status is the jailed process's (it dies with the parent: PDEATHSIG). In
// the jailed process: {0, true}, PID 1 of its namespaces, in its cgroup,
// "/" the jail folder, still privileged. Errors: in the parent (bad spec,
// missing bind source, cgroup), or in a child (the first child before the
// jailed process exists, or the jailed process): a child reports its error
// and _exits (compare getpid() with the pid before the call to tell). The
// parent must be single-threaded.
[[nodiscard]] Result<Forked> fork_into_jail(const JailSpec& spec);

// In the jailed process: rlimits, every capability gone (bounding and
// ambient sets too), uid and gid switched, no_new_privs, not dumpable.
[[nodiscard]] Result<void> drop_privileges(const JailSpec& spec);

// Removes the cgroup of a jail whose process has ended (parent side, after
// waitpid). Idempotent.
void remove_cgroup(pid_t pid);

// Removes what jails of dead husk processes left (their cgroups and jail
// folders, after kill -9 of husk): every run calls it before it jails.
void sweep_stale();

}  // namespace husk::jail
