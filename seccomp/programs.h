// The BPF programs of husk's thread classes, compiled from their
// allow-lists (allow_list.h) with libseccomp when husk is built
// (bake.cpp writes them into generated/seccomp/programs.inc). Installing a
// filter then costs no compilation at start-up, and husk does not carry
// libseccomp at all. The unit tests check that the baked programs are what
// the lists compile to.
#pragma once

#include <linux/filter.h>

#include <span>

#include "seccomp/filter.h"
#include "seccomp/thread_class.h"

namespace husk::seccomp {

// `c`'s program for `m`: SECCOMP_RET_TRAP (kEnforce) or SECCOMP_RET_LOG
// (kLog) for calls outside the list; empty for kOff.
[[nodiscard]] std::span<const sock_filter> baked_program(ThreadClass c, Mode m);

}  // namespace husk::seccomp
