// The snapshot cache: one snapshot per VM configuration (kernel, images,
// memory, vCPUs, command line), host CPU and husk build, made on first use
// (`[vm] start = "snapshot"`, `husk run --warm`) and shared by every later
// VM of that configuration. Each entry is a folder named by a hash of its
// configuration description, holding the state file and the memory file;
// it is made in a temporary folder and renamed into place, under a lock,
// so concurrent husks make it once and never see half of one.
#pragma once

#include <string>

#include "runtime/agent/vm_session.h"
#include "runtime/common/result.h"
#include "runtime/vmm/vm_config.h"

namespace husk::snapshot {

// $HUSK_SNAPSHOT_CACHE, else $XDG_CACHE_HOME/husk/snapshots, else
// ~/.cache/husk/snapshots.
[[nodiscard]] std::string default_cache_dir();

// The canonical description of what a snapshot of `config` depends on, one
// "key=value" per line: husk's build id, the host CPU's KVM CPUID, vCPUs,
// memory, the kernel and initrd (path, size, change time, inode), the
// command line, each disk (path, mode, identity), the devices.
[[nodiscard]] Result<std::string> describe_config(const vmm::VmConfig& config);

// Boots `config` with its agent, pauses it once the agent answers, and
// writes its snapshot into `dir` (state and memory files). `options` are
// the session's (jail, timeouts).
[[nodiscard]] Result<void> create_snapshot(const vmm::VmConfig& config, const std::string& dir,
                                           const agent::SessionOptions& options);

// The snapshot in `dir`, checked whole and against `config` first: a
// snapshot of another configuration or build, or a damaged one, is refused
// with what differs.
[[nodiscard]] Result<agent::RestoreSource> use_snapshot(const vmm::VmConfig& config, const std::string& dir);

// The cached snapshot for `config` under `cache_dir` (empty: the default),
// made first when there is none or the one there is from another build.
[[nodiscard]] Result<agent::RestoreSource> ensure_snapshot(const vmm::VmConfig& config, const std::string& cache_dir,
                                                           const agent::SessionOptions& options);

}  // namespace husk::snapshot
