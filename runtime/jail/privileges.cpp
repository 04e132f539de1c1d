// drop_privileges (jail.h; docs/jail.md, "the drop"): in the jailed
// process, after it opened what needs privilege and before any guest code
// runs: rlimits, every capability set emptied (bounding and ambient too),
// the jail's uid and gid, no_new_privs, not dumpable. Then it verifies.
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include <fmt/format.h>

#include "runtime/jail/jail.h"

namespace husk::jail {

namespace {

// PR_CAPBSET_DROP and PR_CAPBSET_READ answer EINVAL past the last
// capability the kernel knows (/proc/sys/kernel/cap_last_cap, which the
// jail cannot read: it has no /proc). 64 is the capability sets' width.
constexpr int kCapabilityLimit = 64;

rlim_t as_rlim(uint64_t v) {
  return v >= static_cast<uint64_t>(RLIM_INFINITY) ? RLIM_INFINITY : static_cast<rlim_t>(v);
}

// Soft = hard = `value`, or the current hard limit if that is lower (only
// CAP_SYS_RESOURCE may raise a hard limit, and the jail must not fail where
// the host is stricter than asked).
Result<void> limit(int resource, const char* name, uint64_t value) {
  struct rlimit current {};
  if (::getrlimit(resource, &current) != 0) return fail_errno(fmt::format("getrlimit({})", name));
  rlim_t v = as_rlim(value);
  if (current.rlim_max != RLIM_INFINITY && (v == RLIM_INFINITY || v > current.rlim_max)) v = current.rlim_max;
  const struct rlimit wanted {v, v};
  if (::setrlimit(resource, &wanted) != 0) return fail_errno(fmt::format("setrlimit({}, {})", name, value));
  return {};
}

Result<void> drop_bounding_set() {
  for (int cap = 0; cap < kCapabilityLimit; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
    if (errno == EINVAL) return {};
    return fail_errno(fmt::format("prctl(PR_CAPBSET_DROP, {})", cap));
  }
  return {};
}

// The raw capset/capget system calls (<linux/capability.h>), version 3:
// two 32-bit words per set.
Result<void> clear_capabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return fail_errno("capset(0)");
  return {};
}

Result<void> verify(const JailSpec& spec) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return fail_errno("capget");
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      return fail(fmt::format("capabilities left after the drop: effective {:#x}, permitted {:#x}, inheritable {:#x}",
                              d.effective, d.permitted, d.inheritable));
    }
  }
  for (int cap = 0; cap < kCapabilityLimit; ++cap) {
    const int in = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (in < 0) break;  // EINVAL: past the last capability
    if (in == 1) return fail(fmt::format("capability {} is still in the bounding set", cap));
  }
  uid_t r = 0, e = 0, s = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  if (::getresuid(&r, &e, &s) != 0 || ::getresgid(&rg, &eg, &sg) != 0) return fail_errno("getresuid");
  if (r != spec.uid || e != spec.uid || s != spec.uid || rg != spec.gid || eg != spec.gid || sg != spec.gid) {
    return fail(fmt::format("ids after the drop: uid {}/{}/{}, gid {}/{}/{}; wanted {} and {}", r, e, s, rg, eg,
                            sg, spec.uid, spec.gid));
  }
  if (!spec.user_namespace && ::getgroups(0, nullptr) != 0) return fail("supplementary groups left after the drop");
  return {};
}

}  // namespace

Result<void> drop_privileges(const JailSpec& spec) {
  HUSK_TRY(limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", spec.max_open_files));
  HUSK_TRY(limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", spec.max_file_size));
  HUSK_TRY(limit(RLIMIT_CORE, "RLIMIT_CORE", 0));
  // No RLIMIT_NPROC: it counts the processes of the real uid host-wide; the
  // cgroup's pids.max limits the jail's own.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return fail_errno("clear ambient capabilities");
  HUSK_TRY(drop_bounding_set());
  // In a user namespace setgroups is denied (and there are no groups but
  // the one mapped).
  if (!spec.user_namespace && ::setgroups(0, nullptr) != 0) return fail_errno("setgroups(0)");
  if (::setresgid(spec.gid, spec.gid, spec.gid) != 0) return fail_errno(fmt::format("setresgid({})", spec.gid));
  if (::setresuid(spec.uid, spec.uid, spec.uid) != 0) return fail_errno(fmt::format("setresuid({})", spec.uid));
  // As root the uid change emptied the sets already; in a user namespace
  // the uid stays the same and only capset empties them.
  HUSK_TRY(clear_capabilities());
  HUSK_TRY(verify(spec));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_errno("prctl(PR_SET_NO_NEW_PRIVS)");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail_errno("prctl(PR_SET_DUMPABLE)");
  // The uid change cleared the parent-death signal.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) return fail_errno("prctl(PR_SET_PDEATHSIG)");
  return {};
}

}  // namespace husk::jail
