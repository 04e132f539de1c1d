// Logging for the guest agent: one line per event on stderr, which is the
// serial console when the agent is PID 1. printf-style on purpose: the agent
// is a static binary that stays small and must log even when memory is tight.
#pragma once

#include <cstdarg>
#include <cstdio>

namespace husk::guest {

__attribute__((format(printf, 1, 2))) inline void log_line(const char* fmt, ...) {
  std::va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "husk-agent: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
}

// Logs and returns false, for set-up steps that give up.
__attribute__((format(printf, 1, 2))) inline bool log_fail(const char* fmt, ...) {
  std::va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "husk-agent: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  return false;
}

}  // namespace husk::guest

#define HUSK_LOG(...) ::husk::guest::log_line(__VA_ARGS__)
