// The SIGSYS reporter (violation.h). Runs in the thread that made the
// forbidden call, inside its filter: only memory reads, write(2) and
// exit_group(2), which every allow-list has. No stdio, no allocation, no
// libseccomp: the name comes from a table generated at build time from
// <asm/unistd_64.h> (seccomp/syscall_names.cmake).
#include "seccomp/violation.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <iterator>

#include "seccomp/syscall_names.h"
#include "seccomp/thread_class.h"
#include "seccomp/thread_record.h"

namespace husk::seccomp {

namespace {

// si_code of a seccomp SIGSYS: SYS_SECCOMP in <asm-generic/siginfo.h>,
// which clashes with glibc's <signal.h>.
constexpr int kSysSeccomp = 1;

std::atomic<int> g_report_fd{-1};
std::atomic<bool> g_installed{false};

// A fixed buffer the line is built in; what does not fit is cut.
class Line {
 public:
  void add(const char* s) {
    while (*s != '\0' && used_ < sizeof(buf_) - 1) buf_[used_++] = *s++;
  }
  void add(std::string_view s) {
    for (char c : s) {
      if (used_ == sizeof(buf_) - 1) return;
      buf_[used_++] = c;
    }
  }
  void add_number(unsigned long n) {
    char digits[24];
    size_t k = 0;
    do {
      digits[k++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n != 0 && k < sizeof(digits));
    while (k > 0 && used_ < sizeof(buf_) - 1) buf_[used_++] = digits[--k];
  }
  // A thread name is whatever the thread was called: printable bytes only.
  void add_name(const char* s, size_t max) {
    for (size_t i = 0; i < max && s[i] != '\0' && used_ < sizeof(buf_) - 1; ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      buf_[used_++] = c >= 0x20 && c < 0x7f && c != '"' ? static_cast<char>(c) : '?';
    }
  }
  void write_to(int fd) const {
    size_t done = 0;
    while (done < used_) {
      const long n = ::syscall(SYS_write, fd, buf_ + done, used_ - done);
      if (n <= 0) return;  // EINTR cannot happen: every signal is blocked here
      done += static_cast<size_t>(n);
    }
  }
  void end_line() { buf_[used_++] = '\n'; }  // room kept by add()

 private:
  char buf_[256] = {};
  size_t used_ = 0;
};

const char* syscall_name(int nr) {
  if (nr < 0 || static_cast<size_t>(nr) >= std::size(generated::kSyscallNames)) return nullptr;
  return generated::kSyscallNames[nr];
}

std::string_view class_of_code(uint16_t code) {
  if (code == 0 || code > kAllThreadClasses.size()) return {};
  return class_name(static_cast<ThreadClass>(code - 1));
}

void on_sigsys(int /*signo*/, siginfo_t* info, void* /*context*/) {
  const ThreadRecord& self = this_thread_record();
  // For SECCOMP_RET_TRAP the kernel puts the filter's SECCOMP_RET_DATA in
  // si_errno: the class whose filter refused (bpf.h, trap_data).
  const auto refused_by = static_cast<uint16_t>(info->si_errno);
  Line line;
  line.add("husk: seccomp: ");
  if (self.class_code != 0) {
    line.add("the ");
    line.add(class_of_code(self.class_code));
    line.add(" thread \"");
    line.add_name(self.name, sizeof(self.name));
    line.add("\"");
  } else {
    line.add("a thread of no class of its own");
  }
  line.add(" made a forbidden system call: ");
  const int nr = info->si_code == kSysSeccomp ? info->si_syscall : -1;
  if (const char* name = syscall_name(nr)) {
    line.add(name);
    line.add(" (");
    line.add_number(static_cast<unsigned long>(nr));
    line.add(")");
  } else if (nr >= 0) {
    line.add("number ");
    line.add_number(static_cast<unsigned long>(nr));
  } else {
    line.add("unknown (a SIGSYS not from seccomp)");
  }
  if (refused_by != 0 && refused_by != self.class_code && !class_of_code(refused_by).empty()) {
    line.add(", refused by the ");
    line.add(class_of_code(refused_by));
    line.add(" filter it inherited from the thread that started it");
  }
  line.add("; husk stops (exit ");
  line.add_number(kExitSeccompViolation);
  line.add(")");
  line.end_line();
  line.write_to(STDERR_FILENO);
  if (const int fd = g_report_fd.load(); fd >= 0) line.write_to(fd);
  ::syscall(SYS_exit_group, kExitSeccompViolation);
}

}  // namespace

void install_violation_reporter() {
  if (g_installed.exchange(true)) return;
  struct sigaction action {};
  action.sa_sigaction = on_sigsys;
  action.sa_flags = SA_SIGINFO;
  // No other handler interrupts the report.
  sigfillset(&action.sa_mask);
  ::sigaction(SIGSYS, &action, nullptr);
}

void set_report_fd(int fd) { g_report_fd.store(fd); }

}  // namespace husk::seccomp
