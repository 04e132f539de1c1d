// The VM flags of `husk boot`, `exec` and `run`, declared and parsed in one
// place. Each command picks the groups it offers; values the user did not
// give stay unset, so a job file's [vm] keeps them.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/job/job.h"
#include "runtime/vmm/vm_config.h"

namespace husk::cli {

struct VmFlags {
  std::optional<std::string> kernel;
  std::optional<std::string> initrd;
  std::optional<std::string> cmdline;
  std::optional<uint32_t> vcpus;
  std::optional<uint64_t> memory_mib;
  std::optional<bool> huge_pages;  // --huge-pages on|off
  std::vector<std::string> disks;  // PATH[,ro|,cow|,rw]
  bool rng = false;
  // --warm / --cold: how a job's VM starts, over its [vm] start.
  std::optional<job::StartMode> start;
  std::string snapshot_cache;  // --snapshot-cache
  std::string snapshot_dir;    // --snapshot DIR (implies --warm)
};

enum VmFlagGroups : unsigned {
  kVmShape = 1,    // --kernel --initrd --vcpus --memory --huge-pages
  kVmCmdline = 2,  // --cmdline
  kVmDevices = 4,  // --disk --rng
  kVmStart = 8,    // --warm --cold --snapshot-cache --snapshot
};

void add_vm_flags(CLI::App& cmd, VmFlags& flags, unsigned groups);

// Applies the flags to a VM configuration (disk specs parsed here).
[[nodiscard]] Result<void> apply_vm_flags(const VmFlags& flags, vmm::VmConfig& config);
// Applies the flags over a job's [vm] (the flags win).
[[nodiscard]] Result<void> apply_vm_flags(const VmFlags& flags, job::VmSpec& vm);

// Loads a job file with the flags over its [vm] (a default kernel or
// initramfs the flags replace need not exist) and checks the VM's shape.
// A bad job file's error is its parser's (file:line:column); a bad flag's
// starts with "husk: ".
[[nodiscard]] Result<job::Job> load_job_with_flags(const std::string& file, const VmFlags& flags,
                                                   bool has_request_input);

}  // namespace husk::cli
