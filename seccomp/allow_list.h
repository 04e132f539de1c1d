// The allow-list of every thread class as data (Firecracker's per-thread
// JSON, Cloud Hypervisor's seccomp_filters.rs): each system call a class
// may make, why it needs it, and the argument conditions that narrow it
// (ioctl to the requests the class sends, socket to AF_UNIX, mmap and
// mprotect without PROT_EXEC, clone to threads). filter.cpp compiles these
// lists; `husk seccomp list` prints them; docs/seccomp.md says how to add
// to them. A call outside its thread's list ends husk (violation.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "seccomp/thread_class.h"

namespace husk::seccomp {

// A named constant an argument may equal (KVM_RUN, AF_UNIX, ...).
struct Value {
  uint64_t value = 0;
  std::string_view name;
};

// One condition on one argument: (argument & mask) equals one of `values`.
// kWholeArgument compares the argument itself. `width32`: the kernel reads
// the argument as a 32-bit int, so only its low 32 bits are compared (a
// sign-extended int still matches).
struct ArgCheck {
  static constexpr uint64_t kWholeArgument = ~uint64_t{0};
  uint8_t index = 0;  // 0-5
  uint64_t mask = kWholeArgument;
  std::string_view mask_name;  // "PROT_EXEC" in "arg2 & PROT_EXEC == 0"
  std::vector<Value> values;   // any one of them
  bool width32 = true;
};

enum class Action : uint8_t {
  kAllow,
  kErrno,  // the call fails with `errno_value` instead of ending husk
};

// One entry of a list. A call is allowed when every check holds (no checks:
// any arguments). A system call may have several entries (alternatives).
struct Rule {
  int nr = -1;            // __NR_<name> on x86_64
  std::string_view name;  // as in <asm/unistd_64.h>
  std::string reason;     // why this class needs it (one line)
  std::vector<ArgCheck> checks;
  Action action = Action::kAllow;
  int errno_value = 0;
};

struct AllowList {
  ThreadClass cls = ThreadClass::kMain;
  std::string_view runs;  // what a thread of this class runs
  std::vector<Rule> rules;
};

// The list of `c` (built once, immutable afterwards, safe from any thread).
[[nodiscard]] const AllowList& allow_list(ThreadClass c);

// Distinct system calls the list allows (kAllow entries), the figure the
// README compares with Firecracker's; rules() counts entries.
[[nodiscard]] size_t allowed_syscall_count(const AllowList& list);

// "arg1 in {KVM_RUN, KVM_GET_REGS}", "arg2 & PROT_EXEC == 0", "any" when
// the rule has no checks; "-> EACCES" is appended for kErrno rules.
[[nodiscard]] std::string describe_checks(const Rule& rule);

// The entries of `inner` that a thread running under `outer`'s filter as
// well could not make (as "name(args)"). A thread started by a thread that
// has entered a class inherits that class's filter, and the kernel applies
// both: `inner` is only usable there when this is empty.
[[nodiscard]] std::vector<std::string> not_covered(ThreadClass outer, ThreadClass inner);

}  // namespace husk::seccomp
