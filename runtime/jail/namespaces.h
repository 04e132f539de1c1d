// fork_into_jail's two steps (docs/jail.md, "step by step"), with the
// cgroup optional: the tests use that on hosts without cgroup v2 to check
// everything else. husk itself always goes through fork_into_jail (with
// the cgroup). Private to the jail and its tests.
#pragma once

#include <sched.h>

#include "runtime/common/result.h"
#include "runtime/jail/jail.h"

namespace husk::jail {

enum class WithCgroup : bool { kNo, kYes };

[[nodiscard]] Result<Forked> fork_jailed(const JailSpec& spec, WithCgroup cgroup);

// The namespaces of a jail, and the user namespace an unprivileged jail
// enters first (check() tries them).
inline constexpr int kJailNamespaces =
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

// unshare(CLONE_NEWUSER), then spec.uid and spec.gid inside are the caller's
// euid and egid outside (the only ids that exist in it), with every
// capability inside. Only system calls: safe in a child forked from a
// multi-threaded process. Returns 0, or the errno with `step` set to what
// failed ("unshare(CLONE_NEWUSER)", "/proc/self/uid_map", ...).
[[nodiscard]] int enter_user_namespace(const JailSpec& spec, const char*& step);

}  // namespace husk::jail
