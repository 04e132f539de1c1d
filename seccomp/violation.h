// What happens when a thread makes a system call outside its allow-list
// (Mode::kEnforce): the kernel raises SIGSYS in that thread; the handler
// installed here writes one line to stderr (and to the report fd, if set)
// naming the thread class, the thread's name and the system call, and ends
// the whole process with kExitSeccompViolation. Async-signal-safe: no
// allocation, no locks, only write(2) and exit_group(2), which every
// allow-list has for this reason.
#pragma once

namespace husk::seccomp {

// Distinct from husk's other exit codes (0-3), from `husk exec`'s command
// statuses (0-124), its own 125-127 and 128+signal (up to 192).
inline constexpr int kExitSeccompViolation = 200;

// Installs the SIGSYS handler (process-wide, idempotent). enter() calls it.
void install_violation_reporter();

// Also write the report line to `fd` (a VMM child's channel to its parent);
// -1 for none.
void set_report_fd(int fd);

}  // namespace husk::seccomp
