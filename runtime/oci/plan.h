// The container plan: how husk runs an OCI spec (spec.h) as a microVM,
// with every field that is not honoured as it is reported as a note,
// never dropped in silence (issue 15: "what it cannot honour is refused or
// logged").
//
// The mapping (runtime-spec config.md, config-linux.md):
// - process: args, env, cwd, user.uid/gid map onto the agent's Exec;
//   terminal onto a pty of consoleSize (24x80 where a dimension is unset).
//   rlimits: RLIMIT_NOFILE -> limits.open_files, RLIMIT_FSIZE ->
//   limits.file_size, both the hard value (the agent sets soft and hard
//   alike: an info note when the soft one was lower); an unlimited value
//   (RLIM_INFINITY) is no limit. Other rlimits: a warning each.
//   additionalGids, umask, user.username, scheduler, ioPriority,
//   execCPUAffinity, commandLine: a warning each (not applied); capabilities,
//   apparmorProfile, selinuxLabel, oomScoreAdj, noNewPrivileges: an info
//   note each (the VM is the boundary). No process or empty args: an error.
// - resources: memory.limit -> limits.memory_bytes (the guest cgroup), and
//   the VM gets the limit rounded up to MiB + guest_overhead_mib, at least
//   kMinVmMemoryMib, and an error past kMaxVmMemoryMib unless the
//   annotation below sizes the VM; no limit: defaults.memory_mib. cpu.quota/period ->
//   vcpus = ceil(quota / period) (period 0 or unset: the kernel's 100 ms),
//   clamped to [1, host_cpus], with an info note (the fraction itself is
//   not enforced); no quota: defaults.vcpus. pids.limit > 0 -> limits.pids.
//   cpu.shares, cpu.cpus and the rest: a note each.
// - annotations "io.husk.vm.memory_mib" (kMinVmMemoryMib..kMaxVmMemoryMib)
//   and "io.husk.vm.vcpus" (1..32) override the VM's shape; a bad value is
//   an error naming the annotation. Other io.husk.* annotations: a warning
//   (a misspelt one would otherwise do nothing).
// - mounts: proc at /proc, sysfs at /sys, tmpfs at /dev, devpts at
//   /dev/pts, tmpfs or bind at /dev/shm, mqueue at /dev/mqueue, cgroup or
//   cgroup2 at /sys/fs/cgroup are the guest's own: one info note lists
//   them. A bind (type "bind", or options "bind"/"rbind") of a host file
//   or folder of at most max_copy_bytes (a folder also at most
//   max_copy_entries entries) becomes a FileCopy, with an info note: it is
//   copied at start, later changes are not shared, "ro" is not enforced.
//   tmpfs elsewhere: a warning (the folder stays part of the root, whose
//   writes go to guest RAM anyway). Everything else is an error naming the
//   destination and why: a bind of a larger folder or file, of a missing
//   source or of a special file (a device node too), a bind into /proc or
//   /sys, any other
//   type (nfs, overlay, ...), a relative destination.
// - namespaces: one with a path is not joined: a warning (for network: the
//   VM has loopback only); user with ID mappings: a warning; the rest one
//   info note (the VM is the boundary). hooks and linux.* fields not
//   mapped: a warning each. hostname -> hostname (at most 64 bytes);
//   domainname: a warning; root.readonly: kept, with an info note (writes
//   go to guest RAM either way); cgroupsPath: an info note.
//
// plan_container reads the host: root.path must be a folder, and bind
// sources are stat'ed and (folders) walked, without following symbolic
// links inside them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/agent/agent_client.h"
#include "runtime/common/result.h"
#include "runtime/oci/spec.h"

namespace husk::oci {

// Logged by husk-oci: a warning is a field not honoured; info is a field
// honoured differently than runc would.
struct Note {
  bool warning = false;
  std::string text;
};

// A host file or folder copied into the guest before the process starts.
struct FileCopy {
  std::string source;       // absolute host path
  std::string destination;  // absolute guest path
  bool directory = false;
  uint64_t bytes = 0;       // a file's size; a folder's regular files together
};

struct PlanDefaults {
  uint64_t memory_mib = 256;
  uint32_t vcpus = 1;
  uint32_t host_cpus = 1;
  uint64_t max_copy_bytes = 16ull << 20;
  uint64_t guest_overhead_mib = 64;
  uint32_t max_copy_entries = 10'000;  // entries in a bind folder (files, folders, links)
};

inline constexpr uint64_t kMinVmMemoryMib = 128;
inline constexpr uint64_t kMaxVmMemoryMib = 1ull << 20;  // 1 TiB: a sanity bound, the VMM checks the host's
inline constexpr const char* kMemoryAnnotation = "io.husk.vm.memory_mib";
inline constexpr const char* kVcpusAnnotation = "io.husk.vm.vcpus";

struct ContainerPlan {
  uint32_t vcpus = 1;
  uint64_t memory_mib = 256;  // the VM's memory
  std::string rootfs;         // absolute host folder (spec root.path)
  bool root_readonly = false;
  std::string hostname;
  agent::ExecRequest process;    // argv, env, cwd, uid, gid, pty, rows, cols, limits
  std::vector<FileCopy> copies;  // in the spec's mount order
  std::vector<Note> notes;
};

[[nodiscard]] Result<ContainerPlan> plan_container(const Spec& spec, const PlanDefaults& defaults);
// The process mapping alone (for exec); appends its notes to `notes`.
// Errors name the field ("process.args: empty: nothing to run").
[[nodiscard]] Result<agent::ExecRequest> plan_exec(const Process& process, std::vector<Note>& notes);

}  // namespace husk::oci
