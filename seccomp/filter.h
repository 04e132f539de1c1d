// The seccomp filters of husk's threads: each ThreadClass's allow-list
// (allow_list.h), compiled into a BPF program when husk is built
// (programs.h), installed by each thread on itself with enter(). A system call outside the list
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
[[nodiscard]] constexpr std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::kEnforce: return "enforce";
    case Mode::kLog: return "log";
    case Mode::kOff: return "off";
  }
  return "?";
}
[[nodiscard]] Result<Mode> parse_mode(std::string_view name);

// The process-wide mode, set once by the CLI before threads start
// (enforce unless set).
void set_mode(Mode m);
[[nodiscard]] Mode mode();

// Checks that the calling thread may start threads of `classes` (a thread
// inherits its parent's filter) and makes the one-time set-ups that need
// calls no list allows (the SIGSYS reporter, libraries' first use), so
// that enter() only installs. Thread-safe.
[[nodiscard]] Result<void> prepare(std::initializer_list<ThreadClass> classes);

// In the calling thread: sets no_new_privs, records the class for the
// violation report, and installs the class's filter (per mode()). Call
// before the thread touches anything the guest controls. A thread that
// has entered a class cannot leave it or enter another.
[[nodiscard]] Result<void> enter(ThreadClass c);

// The class the calling thread entered, if any.
[[nodiscard]] std::optional<ThreadClass> current_class();

}  // namespace husk::seccomp
