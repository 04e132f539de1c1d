#include "cli/sandbox_flags.h"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "seccomp/filter.h"

namespace husk::cli {

namespace {
// What a VMM process holds besides guest RAM: its code and heap, the
// console's buffer (64 MiB at most, docs/hostile-guest.md), vsock's held
// bytes (16 MiB) and the kernel's page tables and socket buffers.
constexpr uint64_t kVmmOverheadMib = 160;
}  // namespace

void add_seccomp_flag(CLI::App& cmd, SandboxFlags& flags) {
  cmd.add_option("--seccomp", flags.seccomp,
                 "system call filters of the VMM's threads: enforce (a forbidden call stops husk, exit 200), "
                 "log (the kernel logs it) or off")
      ->check(CLI::IsMember({"enforce", "log", "off"}))
      ->capture_default_str();
}

void add_jail_flags(CLI::App& cmd, SandboxFlags& flags) {
  cmd.add_flag_function(
      "--jail,!--no-jail",
      [&flags](int64_t n) { flags.jail = n > 0; },
      "run the VMM jailed: own namespaces, its own folder as /, no capabilities, an unprivileged uid, its own "
      "cgroup (docs/jail.md); the default when husk runs as root");
  cmd.add_option("--jail-uid", flags.jail_uid, "the jailed VMM's uid")->capture_default_str();
  cmd.add_option("--jail-gid", flags.jail_gid, "the jailed VMM's gid")->capture_default_str();
}

Result<void> apply_seccomp_flag(const SandboxFlags& flags) {
  HUSK_TRY_ASSIGN(seccomp::Mode mode, seccomp::parse_mode(flags.seccomp));
  seccomp::set_mode(mode);
  return {};
}

Result<std::optional<jail::JailSpec>> jail_for(const SandboxFlags& flags, const job::VmSpec& vm) {
  const bool wanted = flags.jail.value_or(::geteuid() == 0);
  if (!wanted) return std::optional<jail::JailSpec>{};
  jail::JailSpec spec;
  spec.uid = flags.jail_uid;
  spec.gid = flags.jail_gid;
  // No file-size limit: it would hold persistent disks too; the console
  // has its own cap (docs/hostile-guest.md).
  spec.max_file_size = UINT64_MAX;
  spec.cgroup.memory_max_bytes = (vm.memory_mib + kVmmOverheadMib) << 20;
  // vCPUs, one I/O thread per device, the console's, the control thread.
  spec.cgroup.pids_max = vm.vcpus + static_cast<uint32_t>(vm.disks.size()) + 8;
  // The vCPUs at full speed, and one CPU's worth for the device threads;
  // on a host with no more CPUs than that the limit could never bind, and
  // is left at "max" (a quota is a 100 ms bandwidth timer in the kernel
  // for nothing).
  const uint32_t cpus = static_cast<uint32_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (vm.vcpus + 1 < cpus) spec.cgroup.cpu_max_percent = (vm.vcpus + 1) * 100;
  if (auto ok = jail::check(spec); !ok) {
    const std::string how = flags.jail ? "" : " (husk jails its VMM by default when run as root; --no-jail runs it without)";
    return fail(ok.error().message + how);
  }
  return std::optional<jail::JailSpec>{std::move(spec)};
}

Result<void> sandbox_options(const SandboxFlags& flags, const job::VmSpec& vm, job::RunnerOptions& runner) {
  HUSK_TRY(apply_seccomp_flag(flags));
  HUSK_TRY_ASSIGN(runner.jail, jail_for(flags, vm));
  runner.confine_caller = true;
  return {};
}

}  // namespace husk::cli
