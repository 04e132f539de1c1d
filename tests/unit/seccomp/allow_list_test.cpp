// The allow-lists as data (seccomp/allow_list.h): every list compiles, has
// what the reporter and glibc need, and nothing that would let a jailed
// thread out (exec, fork, ptrace, mounts, sockets other than AF_UNIX).
#include "seccomp/allow_list.h"

#include <linux/filter.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <span>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/common/signals.h"
#include "runtime/kvm/flex_array_ioctls.h"
#include "seccomp/bpf.h"
#include "seccomp/filter.h"
#include "seccomp/programs.h"
#include "seccomp/syscall_names.h"

namespace sc = husk::seccomp;

namespace {

std::vector<const sc::Rule*> rules_named(sc::ThreadClass c, std::string_view name) {
  std::vector<const sc::Rule*> out;
  for (const sc::Rule& r : sc::allow_list(c).rules) {
    if (r.name == name) out.push_back(&r);
  }
  return out;
}

bool allows(sc::ThreadClass c, std::string_view name) {
  for (const sc::Rule* r : rules_named(c, name)) {
    if (r->action == sc::Action::kAllow) return true;
  }
  return false;
}

std::set<uint64_t> values_of(const sc::Rule& r, uint8_t index) {
  std::set<uint64_t> out;
  for (const sc::ArgCheck& check : r.checks) {
    if (check.index != index) continue;
    for (const sc::Value& v : check.values) out.insert(v.value);
  }
  return out;
}

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

TEST_CASE("every class's list compiles in every mode", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    for (sc::Mode m : {sc::Mode::kEnforce, sc::Mode::kLog}) {
      INFO(sc::class_name(c) << " in mode " << sc::mode_name(m));
      auto program = sc::compile_filter(c, m);
      REQUIRE(program);
      CHECK(!program->empty());
      CHECK(program->size() <= BPF_MAXINSNS);
    }
    CHECK_FALSE(sc::compile_filter(c, sc::Mode::kOff));
  }
}

TEST_CASE("the programs baked into husk are what the lists compile to", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    for (sc::Mode m : {sc::Mode::kEnforce, sc::Mode::kLog}) {
      INFO(sc::class_name(c) << " in mode " << sc::mode_name(m));
      auto compiled = sc::compile_filter(c, m);
      REQUIRE(compiled);
      const std::span<const sock_filter> baked = sc::baked_program(c, m);
      REQUIRE(baked.size() == compiled->size());
      CHECK(std::memcmp(baked.data(), compiled->data(), baked.size_bytes()) == 0);
    }
    CHECK(sc::baked_program(c, sc::Mode::kOff).empty());
  }
  // The enforce and log programs differ in their default action only.
  const auto enforce = sc::baked_program(sc::ThreadClass::kVcpu, sc::Mode::kEnforce);
  const auto log = sc::baked_program(sc::ThreadClass::kVcpu, sc::Mode::kLog);
  CHECK(enforce.size() == log.size());
  CHECK(std::memcmp(enforce.data(), log.data(), enforce.size_bytes()) != 0);
}

TEST_CASE("compiling all nine filters costs a few CPU milliseconds", "[unit][seccomp]") {
  const int64_t start = thread_cpu_ns();
  size_t instructions = 0;
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    auto program = sc::compile_filter(c, sc::Mode::kEnforce);
    REQUIRE(program);
    instructions += program->size();
  }
  const double ms = static_cast<double>(thread_cpu_ns() - start) / 1e6;
  fmt::print(stderr, "[seccomp] compiling the 8 class filters: {:.2f} CPU ms, {} BPF instructions in all\n", ms,
             instructions);
  // Generous: a loaded CI machine, sanitizers. Measured about 1-2 ms.
  CHECK(ms < 100);
}

TEST_CASE("parse_mode reads enforce, log and off and refuses anything else", "[unit][seccomp]") {
  for (sc::Mode m : {sc::Mode::kEnforce, sc::Mode::kLog, sc::Mode::kOff}) {
    auto parsed = sc::parse_mode(sc::mode_name(m));
    REQUIRE(parsed);
    CHECK(*parsed == m);
  }
  auto bad = sc::parse_mode("permissive");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("permissive") != std::string::npos);
  CHECK_FALSE(sc::parse_mode(""));
  CHECK_FALSE(sc::parse_mode("Enforce"));
}

TEST_CASE("the lists' rules are well formed: known numbers, reasons, no duplicates", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    const sc::AllowList& list = sc::allow_list(c);
    INFO("class " << sc::class_name(c));
    CHECK(list.cls == c);
    CHECK(!list.runs.empty());
    std::set<std::string> seen;
    for (const sc::Rule& r : list.rules) {
      INFO("rule " << r.name << " " << sc::describe_checks(r));
      // The number is the one the kernel headers give the name.
      REQUIRE(r.nr >= 0);
      REQUIRE(static_cast<size_t>(r.nr) < std::size(sc::generated::kSyscallNames));
      CHECK(std::string_view(sc::generated::kSyscallNames[r.nr]) == r.name);
      CHECK(r.reason.size() > 10);
      CHECK(r.reason.find('\n') == std::string::npos);
      CHECK(seen.insert(fmt::format("{} {}", r.name, sc::describe_checks(r))).second);
      std::set<uint8_t> args;
      for (const sc::ArgCheck& check : r.checks) {
        CHECK(check.index < 6);
        CHECK(!check.values.empty());
        // libseccomp takes one comparison per argument in a rule.
        CHECK(args.insert(check.index).second);
      }
      if (r.action == sc::Action::kErrno) CHECK(r.errno_value > 0);
    }
    // An unconditional rule would make a conditional one of the same call
    // pointless (and hide that the condition is not enforced).
    for (const sc::Rule& r : list.rules) {
      if (!r.checks.empty()) continue;
      CHECK(rules_named(c, r.name).size() == 1);
    }
    CHECK(sc::allowed_syscall_count(list) > 10);
    CHECK(sc::allowed_syscall_count(list) <= list.rules.size());
  }
}

TEST_CASE("every list has what the reporter, glibc and thread ends need", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    INFO("class " << sc::class_name(c));
    for (const char* name : {"write", "exit_group", "exit", "rt_sigreturn", "rt_sigprocmask", "futex", "brk", "mmap",
                             "munmap", "mprotect", "madvise", "restart_syscall", "clock_gettime"}) {
      INFO("system call " << name);
      CHECK(allows(c, name));
    }
    // Only main opens files; the rest refuse glibc's one open softly.
    const auto opens = rules_named(c, "openat");
    REQUIRE(opens.size() == 1);
    if (c == sc::ThreadClass::kMain) {
      CHECK(opens.front()->action == sc::Action::kAllow);
    } else {
      CHECK(opens.front()->action == sc::Action::kErrno);
      CHECK(opens.front()->errno_value == EACCES);
    }
  }
}

TEST_CASE("no list lets a thread out: no exec, fork, ptrace, mounts, namespaces, BPF, modules", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    INFO("class " << sc::class_name(c));
    for (const char* name :
         {"execve", "execveat", "fork", "vfork", "ptrace", "mount", "umount2", "pivot_root", "chroot", "unshare",
          "setns", "bpf", "init_module", "finit_module", "delete_module", "kexec_load", "process_vm_readv",
          "process_vm_writev", "open_by_handle_at", "keyctl", "add_key", "userfaultfd", "perf_event_open",
          "io_uring_setup", "setuid", "setgid", "capset", "open", "socketpair", "memfd_create", "mknod", "chmod",
          "clone3"}) {
      INFO("system call " << name);
      CHECK_FALSE(allows(c, name));
    }
  }
}

TEST_CASE("only main starts threads under its filter, and only threads", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    INFO("class " << sc::class_name(c));
    // The VMM's control thread starts the VM's threads before it enters
    // its class (Machine::set_control_filter).
    const bool starts = c == sc::ThreadClass::kMain;
    CHECK(allows(c, "clone") == starts);
    // clone3's flags are out of a filter's reach: refused with ENOSYS, so
    // glibc falls back to clone.
    const auto clone3 = rules_named(c, "clone3");
    CHECK(clone3.size() == (starts ? 1u : 0u));
    for (const sc::Rule* r : clone3) {
      CHECK(r->action == sc::Action::kErrno);
      CHECK(r->errno_value == ENOSYS);
    }
    for (const sc::Rule* r : rules_named(c, "clone")) {
      REQUIRE(r->checks.size() == 1);
      CHECK(r->checks[0].index == 0);
      CHECK(r->checks[0].mask == CLONE_THREAD);
      CHECK(values_of(*r, 0) == std::set<uint64_t>{CLONE_THREAD});
    }
  }
}

TEST_CASE("sockets: AF_UNIX streams in vsock and main, none elsewhere", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    INFO("class " << sc::class_name(c));
    const auto sockets = rules_named(c, "socket");
    if (c != sc::ThreadClass::kVsock && c != sc::ThreadClass::kMain) {
      CHECK(sockets.empty());
      CHECK_FALSE(allows(c, "accept4"));
      CHECK_FALSE(allows(c, "connect"));
      continue;
    }
    REQUIRE(sockets.size() == 1);
    CHECK(values_of(*sockets.front(), 0) == std::set<uint64_t>{AF_UNIX});
    const sc::ArgCheck* type = nullptr;
    for (const sc::ArgCheck& check : sockets.front()->checks) {
      if (check.index == 1) type = &check;
    }
    REQUIRE(type != nullptr);
    CHECK(values_of(*sockets.front(), 1) == std::set<uint64_t>{SOCK_STREAM});
    CHECK((type->mask & (SOCK_NONBLOCK | SOCK_CLOEXEC)) == 0);
    CHECK((type->mask & SOCK_DGRAM) != 0);
  }
}

TEST_CASE("memory is never mapped executable, and ioctl is narrowed", "[unit][seccomp]") {
  for (sc::ThreadClass c : sc::kAllThreadClasses) {
    INFO("class " << sc::class_name(c));
    for (const char* name : {"mmap", "mprotect"}) {
      const auto rules = rules_named(c, name);
      REQUIRE(rules.size() == 1);
      REQUIRE(rules.front()->checks.size() == 1);
      CHECK(rules.front()->checks[0].index == 2);
      CHECK(rules.front()->checks[0].mask == PROT_EXEC);
      CHECK(values_of(*rules.front(), 2) == std::set<uint64_t>{0});
    }
    for (const sc::Rule* r : rules_named(c, "ioctl")) CHECK(!r->checks.empty());
  }
  // Exactly the requests the vCPU thread's code sends (vcpu_loop.cpp,
  // vcpu_fault_report.cpp, save_vcpu_state); the set-up ioctls run before it
  // exists, and a restore sets state before the thread runs too. The XSAVE
  // and MSR numbers are the C layout's (flex_array_ioctls.h).
  const auto vcpu = rules_named(sc::ThreadClass::kVcpu, "ioctl");
  REQUIRE(vcpu.size() == 1);
  CHECK(values_of(*vcpu.front(), 1) ==
        std::set<uint64_t>{KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE,
                           husk::kvm::kKvmGetXsave, husk::kvm::kKvmGetXsave2, KVM_GET_XCRS, KVM_GET_DEBUGREGS,
                           KVM_GET_LAPIC, husk::kvm::kKvmGetMsrs});
  // The control thread reads the VM's in-kernel devices for a snapshot.
  const auto vmm = rules_named(sc::ThreadClass::kVmm, "ioctl");
  REQUIRE(vmm.size() == 1);
  CHECK(values_of(*vmm.front(), 1) == std::set<uint64_t>{KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK});
  // Never a KVM_SET_*: a thread the guest can reach only reads state.
  for (sc::ThreadClass c : {sc::ThreadClass::kVcpu, sc::ThreadClass::kVmm}) {
    for (const sc::Rule* r : rules_named(c, "ioctl")) {
      for (const sc::ArgCheck& check : r->checks) {
        for (const sc::Value& v : check.values) CHECK(std::string_view(v.name).find("SET") == std::string_view::npos);
      }
    }
  }
  for (sc::ThreadClass c : {sc::ThreadClass::kBlock, sc::ThreadClass::kRng, sc::ThreadClass::kVsock,
                            sc::ThreadClass::kConsole, sc::ThreadClass::kWatchdog}) {
    CHECK_FALSE(allows(c, "ioctl"));
  }
}

TEST_CASE("the kick signal the vmm may send is the vCPU loop's", "[unit][seccomp]") {
  const auto tgkill = rules_named(sc::ThreadClass::kVmm, "tgkill");
  REQUIRE(tgkill.size() == 1);
  CHECK(values_of(*tgkill.front(), 2) ==
        std::set<uint64_t>{static_cast<uint64_t>(SIGABRT), static_cast<uint64_t>(husk::kick_signal())});
}

TEST_CASE("which classes can start which: watchdog under main, device threads not under vmm", "[unit][seccomp]") {
  CHECK(sc::not_covered(sc::ThreadClass::kMain, sc::ThreadClass::kWatchdog).empty());
  for (sc::ThreadClass c : sc::kAllThreadClasses) CHECK(sc::not_covered(c, c).empty());
  const auto missing = sc::not_covered(sc::ThreadClass::kVmm, sc::ThreadClass::kVcpu);
  CHECK(std::find_if(missing.begin(), missing.end(), [](const std::string& s) {
          return s.rfind("ioctl(", 0) == 0 && s.find("KVM_RUN") != std::string::npos;
        }) != missing.end());
}

TEST_CASE("describe_checks words the conditions", "[unit][seccomp]") {
  const auto vcpu = rules_named(sc::ThreadClass::kVcpu, "ioctl");
  REQUIRE(vcpu.size() == 1);
  CHECK(sc::describe_checks(*vcpu.front()) ==
        "arg1 in {KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_XSAVE, "
        "KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_DEBUGREGS, KVM_GET_LAPIC, KVM_GET_MSRS}");
  CHECK(sc::describe_checks(*rules_named(sc::ThreadClass::kRng, "mmap").front()) == "arg2 & PROT_EXEC == 0");
  CHECK(sc::describe_checks(*rules_named(sc::ThreadClass::kRng, "getrandom").front()) == "any");
  CHECK(sc::describe_checks(*rules_named(sc::ThreadClass::kRng, "openat").front()) == "any -> EACCES");
}
