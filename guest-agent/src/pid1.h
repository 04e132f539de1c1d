// The duties of the guest's PID 1 that are not about serving the host:
// mounting the kernel file systems, protecting the agent from the OOM killer
// and from being paged out, and reading its settings from the kernel command
// line. Every step logs and carries on when it fails: PID 1 must not exit.
#pragma once

#include <cstdint>
#include <string>

namespace husk::guest {

// Mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /tmp, /run and
// /sys/fs/cgroup (cgroup2), skipping any that is already mounted, and adds
// the /dev/fd, /dev/std{in,out,err} links devtmpfs lacks. Returns true when
// /proc was not mounted yet: no init ran before us, the kernel started the
// agent itself (`rdinit=/sbin/husk-agent`), so the agent prints the ready
// marker that the initramfs's /init would otherwise have printed.
bool mount_filesystems();

// The line `HUSK_READY uptime=<s> cpus=<n>` on stdout (the console), the
// same line rootfs/initramfs/init prints: boot tests and the boot benchmark
// wait for it whichever program is PID 1.
void print_ready_marker();

// Makes sure fds 0-2 are open (on /dev/console when it exists) so a log
// line never goes to a socket or a job's pipe by accident.
void ensure_std_fds();

// oom_score_adj -1000 and mlockall(MCL_CURRENT | MCL_FUTURE): a job that
// exhausts the guest's memory is killed before the agent and the agent's
// pages stay resident. Jobs reset their own oom_score_adj to 0.
void protect_self();

// The value of `key=` on /proc/cmdline, or empty.
std::string cmdline_value(const std::string& key);

// Enables the memory, pids and cpu controllers for children of the cgroup2
// root. Returns 0 or the errno of memory or pids failing (cpu is optional).
int enable_cgroup_controllers(const std::string& root);

}  // namespace husk::guest
