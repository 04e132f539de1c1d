// run_process: runs a program with arguments, no shell, collecting stdout and
// stderr separately, with a time limit after which it is killed. For tests
// that drive the real husk binary.
#pragma once

#include <string>
#include <vector>

namespace husk::test {

struct ProcessResult {
  int exit_code = -1;   // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  // Killed at the time limit but still not reaped seconds later (stuck in
  // the kernel, e.g. in uninterruptible sleep): run_process gave up on it
  // rather than hang the test.
  bool unreaped = false;
  std::string out;
  std::string err;
  double seconds = 0;
};

ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s = 60,
                          const std::string& stdin_data = "", int signal_after_ms = -1,
                          int signal_to_send = 0);

}  // namespace husk::test
