// An allow-list (allow_list.h) compiled into a classic BPF program for
// seccomp(2) with libseccomp. filter.cpp caches one program per class and
// mode; the tests compile them directly.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <vector>

#include "runtime/common/result.h"
#include "seccomp/filter.h"
#include "seccomp/thread_class.h"

namespace husk::seccomp {

// The SECCOMP_RET_DATA of a class's trap action: the kernel hands it to
// the SIGSYS handler in si_errno, so the report can tell which filter
// refused a call when a thread runs under an inherited one as well.
[[nodiscard]] constexpr uint16_t trap_data(ThreadClass c) { return static_cast<uint16_t>(static_cast<uint16_t>(c) + 1); }

// The program of `c`'s list for `m` (kEnforce: SECCOMP_RET_TRAP for the
// rest, kLog: SECCOMP_RET_LOG); any other architecture than x86_64 kills
// the process. kOff has no program.
[[nodiscard]] Result<std::vector<sock_filter>> compile_filter(ThreadClass c, Mode m);

}  // namespace husk::seccomp
