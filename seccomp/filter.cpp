// seccomp::enter() and its cache of compiled programs (filter.h). Each
// class's program is compiled at most once per process and mode (lazily,
// or by prepare() before threads start: compiling needs calls no list
// allows); enter() only installs it.
#include "seccomp/filter.h"

#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <algorithm>
#include <cstring>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "seccomp/allow_list.h"
#include "seccomp/bpf.h"
#include "seccomp/thread_record.h"
#include "seccomp/violation.h"

namespace husk::seccomp {

namespace {

std::atomic<Mode> g_mode{Mode::kEnforce};

struct CompiledProgram {
  std::once_flag once;
  Result<std::vector<sock_filter>> program{fail("not compiled")};
};

// [class][0: enforce, 1: log]
std::array<std::array<CompiledProgram, 2>, kAllThreadClasses.size()> g_programs;

const Result<std::vector<sock_filter>>& program(ThreadClass c, Mode m) {
  CompiledProgram& slot = g_programs[static_cast<size_t>(c)][m == Mode::kEnforce ? 0 : 1];
  std::call_once(slot.once, [&slot, c, m] { slot.program = compile_filter(c, m); });
  return slot.program;
}

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
// Whether a thread of `c` may start threads under its filter (clone).
bool starts_threads(ThreadClass c) {
  const AllowList& list = allow_list(c);
  return std::any_of(list.rules.begin(), list.rules.end(),
                     [](const Rule& r) { return r.name == "clone" && r.action == Action::kAllow; });
}

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

std::string_view mode_name(Mode m) {
  switch (m) {
    case Mode::kEnforce: return "enforce";
    case Mode::kLog: return "log";
    case Mode::kOff: return "off";
  }
  return "?";
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
  const Mode m = mode();
  for (ThreadClass c : classes) {
    HUSK_TRY(check_startable(c));
    if (m == Mode::kOff) continue;
    if (const auto& compiled = program(c, m); !compiled) {
      return wrap(fmt::format("the seccomp filter of the {} threads", class_name(c)), compiled.error());
    }
  }
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
  const Mode m = mode();
  const std::vector<sock_filter>* filter = nullptr;
  if (m != Mode::kOff) {
    const auto& compiled = program(c, m);
    if (!compiled) return wrap(fmt::format("the seccomp filter of the {} threads", class_name(c)), compiled.error());
    filter = &*compiled;
    // Compiling needs calls no list allows: every class this thread may
    // start later (one its own list covers) is compiled now, if its list
    // lets it start threads at all.
    if (starts_threads(c)) {
      for (ThreadClass startable : kAllThreadClasses) {
        if (startable != c && not_covered(c, startable).empty()) HUSK_TRY(prepare({startable}));
      }
    }
  }
  char name[sizeof(self.name)] = {};
  if (::prctl(PR_GET_NAME, name, 0, 0, 0) != 0) name[0] = '\0';
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail_errno("prctl(PR_SET_NO_NEW_PRIVS)");
  std::memcpy(self.name, name, sizeof(name));
  self.name[sizeof(self.name) - 1] = '\0';
  self.class_code = trap_data(c);
  if (filter != nullptr) {
    sock_fprog prog{static_cast<unsigned short>(filter->size()), const_cast<sock_filter*>(filter->data())};
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
