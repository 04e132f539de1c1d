// The seccomp filters of husk's threads: each ThreadClass's allow-list
// (allow_list.h) compiled with libseccomp into a BPF program once per
// process (on first use, or all at start-up with prepare()), then installed
// by each thread on itself with enter(). A system call outside the list
// raises SIGSYS; the reporter (violation.h) names the thread class and the
// call, and the process exits with kExitSeccompViolation.
#pragma once

#include <string_view>

#include "runtime/common/result.h"
#include "seccomp/thread_class.h"

namespace husk::seccomp {

enum class Mode : uint8_t {
  kEnforce,  // a call outside the list kills the process with a report (the default)
  kLog,      // the kernel logs it (SECCOMP_RET_LOG, see dmesg/audit) and the call goes on
  kOff,      // no filter (no_new_privs is still set)
};

// "enforce", "log", "off".
[[nodiscard]] std::string_view mode_name(Mode m);
[[nodiscard]] Result<Mode> parse_mode(std::string_view name);

// The process-wide mode, set once by the CLI before threads start
// (enforce unless set).
void set_mode(Mode m);
[[nodiscard]] Mode mode();

// Compiles the filters of `classes` now (thread-safe; each class once per
// process), so that enter() only installs.
[[nodiscard]] Result<void> prepare(std::initializer_list<ThreadClass> classes);

// In the calling thread: sets no_new_privs, records the class for the
// violation report, and installs the class's filter (per mode()). Call
// before the thread touches anything the guest controls. A thread that
// has entered a class cannot leave it or enter another.
[[nodiscard]] Result<void> enter(ThreadClass c);

// The class the calling thread entered, if any.
[[nodiscard]] std::optional<ThreadClass> current_class();

}  // namespace husk::seccomp
