// The sandbox flags of `husk boot`, `exec` and `run`: --seccomp (every
// command that runs a VM) and --jail / --no-jail (the commands whose VM runs
// in a VMM process). Declared, checked and turned into runtime options here.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "runtime/common/result.h"
#include "runtime/jail/jail.h"
#include "runtime/job/job.h"
#include "runtime/job/job_runner.h"

namespace husk::cli {

struct SandboxFlags {
  std::string seccomp = "enforce";
  // Unset: jailed when husk runs as root.
  std::optional<bool> jail;
  uint32_t jail_uid = 65534;
  uint32_t jail_gid = 65534;
};

void add_seccomp_flag(CLI::App& cmd, SandboxFlags& flags);
void add_jail_flags(CLI::App& cmd, SandboxFlags& flags);

// Sets the process's seccomp mode from --seccomp.
[[nodiscard]] Result<void> apply_seccomp_flag(const SandboxFlags& flags);

// The jail for a job's VM, or none (--no-jail, or not root and no --jail).
// Its cgroup limits come from the VM's shape. An error says what this host
// lacks for the jail asked for.
[[nodiscard]] Result<std::optional<jail::JailSpec>> jail_for(const SandboxFlags& flags, const job::VmSpec& vm);

// Both, into a job runner's options (which then also confine husk's own
// main thread once the VMM process is forked, unless seccomp is off).
[[nodiscard]] Result<void> sandbox_options(const SandboxFlags& flags, const job::VmSpec& vm,
                                           job::RunnerOptions& runner);

}  // namespace husk::cli
