// seccomp::enter() (filter.h): installs a class's program, compiled when
// husk was built (programs.h).
#include "seccomp/filter.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <span>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "seccomp/allow_list.h"
#include "seccomp/bpf.h"
#include "seccomp/programs.h"
#include "seccomp/thread_record.h"
#include "seccomp/violation.h"

namespace husk::seccomp {

namespace {

std::atomic<Mode> g_mode{Mode::kEnforce};

// One-time set-ups that libraries make on first use, with calls no device
// list allows, done before any filter: spdlog's timestamps call
// localtime_r, which reads /etc/localtime the first time; spdlog's registry
// makes its default logger, whose sink asks isatty() of its stream.
void warm_up_libraries() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::tzset();
    (void)spdlog::default_logger_raw();
  });
}

// A thread started by a thread that has entered a class runs under that
// class's filter too: the kernel keeps both and the stricter answer wins.
// A child class is startable if the parent's list covers all of its calls.
Result<void> check_startable(ThreadClass child) {
  const std::optional<ThreadClass> parent = current_class();
  if (!parent || *parent == child || mode() == Mode::kOff) return {};
  const std::vector<std::string> missing = not_covered(*parent, child);
  if (missing.empty()) return {};
  std::string calls;
  for (size_t i = 0; i < missing.size() && i < 6; ++i) calls += (i == 0 ? "" : ", ") + missing[i];
  if (missing.size() > 6) calls += fmt::format(" and {} more", missing.size() - 6);
  return fail(fmt::format("a {} thread cannot start a {} thread: the new thread would also run under the {} "
                          "filter, which forbids {}; start it before this thread enters its class",
                          class_name(*parent), class_name(child), class_name(*parent), calls));
}

}  // namespace

ThreadRecord& this_thread_record() {
  // initial-exec: a fixed offset from the thread pointer, nothing to
  // allocate when the SIGSYS handler reads it.
  static thread_local ThreadRecord record __attribute__((tls_model("initial-exec")));
  return record;
}

Result<Mode> parse_mode(std::string_view name) {
  for (Mode m : {Mode::kEnforce, Mode::kLog, Mode::kOff}) {
    if (mode_name(m) == name) return m;
  }
  return fail(fmt::format("unknown seccomp mode '{}' (enforce, log or off)", name));
}

void set_mode(Mode m) { g_mode.store(m); }

Mode mode() { return g_mode.load(); }

Result<void> prepare(std::initializer_list<ThreadClass> classes) {
  install_violation_reporter();
  warm_up_libraries();
  for (ThreadClass c : classes) HUSK_TRY(check_startable(c));
  return {};
}

// Entering the class a thread is already in is harmless (no second copy of
// the same filter); entering another is refused.
Result<void> enter(ThreadClass c) {
  ThreadRecord& self = this_thread_record();
  if (self.class_code == trap_data(c)) return {};  // already under this filter: nothing to add
  if (self.class_code != 0) {
    return fail(fmt::format("this thread is in seccomp class {} and cannot enter {}",
                            class_name(static_cast<ThreadClass>(self.class_code - 1)), class_name(c)));
  }
  install_violation_reporter();
  warm_up_libraries();
  const std::span<const sock_filter> filter = baked_program(c, mode());
  char name[sizeof(self.name)] = {};
  if (::prctl(PR_GET_NAME, name, 0, 0, 0) != 0) name[0] = '\0';
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_errno("prctl(PR_SET_NO_NEW_PRIVS)");
  std::memcpy(self.name, name, sizeof(name));
  self.name[sizeof(self.name) - 1] = '\0';
  self.class_code = trap_data(c);
  if (!filter.empty()) {
    sock_fprog prog{static_cast<unsigned short>(filter.size()), const_cast<sock_filter*>(filter.data())};
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
      const int err = errno;
      self.class_code = 0;
      return fail_errno(fmt::format("seccomp(SECCOMP_SET_MODE_FILTER) for the {} class", class_name(c)), err);
    }
  }
  return {};
}

std::optional<ThreadClass> current_class() {
  const uint16_t code = this_thread_record().class_code;
  if (code == 0) return std::nullopt;
  return static_cast<ThreadClass>(code - 1);
}

}  // namespace husk::seccomp
