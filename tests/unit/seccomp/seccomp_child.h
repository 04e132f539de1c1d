// Runs test code in a forked child, for filters (which a process cannot
// take off again): the child's result is its exit status and what it wrote
// to stderr. No Catch2 assertions in the child: it answers with its exit
// code (0 = as expected, other small numbers name the step that failed).
#pragma once

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "seccomp/filter.h"

namespace husk::test {

struct ChildResult {
  int status = -1;  // the exit code, or 128 + the signal that killed it
  std::string err;  // everything the child wrote to stderr
};

template <typename F>
ChildResult in_seccomp_child(F body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ::_exit(body());
  }
  ::close(pipe_fds[1]);
  ChildResult result;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      result.err.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// Names the calling thread (as spawn_thread does) and enters `c`; false if
// that failed.
inline bool enter_as(seccomp::ThreadClass c, const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
  return static_cast<bool>(seccomp::enter(c));
}

}  // namespace husk::test
