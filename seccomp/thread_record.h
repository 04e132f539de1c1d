// What seccomp::enter() records about the calling thread, for the SIGSYS
// reporter (violation.cpp), which may only read memory: the class and the
// thread's name, taken before the filter went in (prctl is not in every
// list). Plain thread-local data with constant initialization: reading it
// in a signal handler allocates nothing.
#pragma once

#include <cstdint>

namespace husk::seccomp {

struct ThreadRecord {
  uint16_t class_code = 0;  // trap_data(class) (bpf.h) once entered; 0 before
  char name[16] = {};       // the thread's name (PR_GET_NAME), NUL-terminated
};

[[nodiscard]] ThreadRecord& this_thread_record();

}  // namespace husk::seccomp
