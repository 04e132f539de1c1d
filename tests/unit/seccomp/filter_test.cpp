// The filters installed for real, each in a forked child (a filter cannot
// be taken off): a forbidden call ends the process with exit 200 and one
// report line naming the class, the thread and the call; log mode lets it
// through; the calls each class's code makes still work.
#include "seccomp/filter.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "seccomp/violation.h"
#include "tests/unit/seccomp/seccomp_child.h"

namespace sc = husk::seccomp;
using husk::test::in_seccomp_child;

using husk::test::enter_as;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a forbidden call in an rng thread ends the process with 200 and one report line", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kRng}));
  const auto child = in_seccomp_child([] {
    if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
    ::socket(AF_INET, SOCK_STREAM, 0);
    return 2;  // not reached
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == sc::kExitSeccompViolation);
  CHECK(child.err ==
        "husk: seccomp: the rng thread \"husk-rng\" made a forbidden system call: socket (41); husk stops (exit "
        "200)\n");
}

TEST_CASE("the report also goes to the report fd", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kBlock}));
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const auto child = in_seccomp_child([&fds] {
    sc::set_report_fd(fds[1]);
    if (!enter_as(sc::ThreadClass::kBlock, "husk-blk0")) return 1;
    ::getrandom(nullptr, 0, 0);  // blk has no getrandom
    return 2;
  });
  ::close(fds[1]);
  std::string report(512, '\0');
  const ssize_t n = ::read(fds[0], report.data(), report.size());
  ::close(fds[0]);
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == sc::kExitSeccompViolation);
  REQUIRE(n > 0);
  report.resize(static_cast<size_t>(n));
  CHECK(report == child.err);
  CHECK(contains(report, "the blk thread \"husk-blk0\" made a forbidden system call: getrandom (318)"));
}

TEST_CASE("in log mode a forbidden call goes on", "[unit][seccomp]") {
  const auto child = in_seccomp_child([] {
    sc::set_mode(sc::Mode::kLog);
    if (!sc::prepare({sc::ThreadClass::kRng}) || !enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    return fd >= 0 ? 0 : 3;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
  CHECK(child.err.empty());
}

TEST_CASE("in mode off there is no filter, but no_new_privs is set", "[unit][seccomp]") {
  const auto child = in_seccomp_child([] {
    sc::set_mode(sc::Mode::kOff);
    if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
    if (::socket(AF_INET, SOCK_STREAM, 0) < 0) return 2;
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return 3;
    return sc::current_class() == sc::ThreadClass::kRng ? 0 : 4;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
}

TEST_CASE("under the rng filter, getrandom, malloc and a refused open work", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kRng}));
  const auto child = in_seccomp_child([] {
    if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
    unsigned char buf[64];
    if (::getrandom(buf, sizeof(buf), 0) != static_cast<ssize_t>(sizeof(buf))) return 2;
    // Large and small blocks: mmap, munmap, brk.
    std::vector<std::vector<char>> blocks;
    for (int i = 0; i < 64; ++i) blocks.emplace_back(static_cast<size_t>(1) << (i % 22), 'x');
    blocks.clear();
    // An open is refused with EACCES, not fatal (glibc's malloc does one).
    if (::open("/etc/hostname", O_RDONLY) != -1 || errno != EACCES) return 3;
    if (sc::current_class() != sc::ThreadClass::kRng) return 4;
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
  CHECK(child.err.empty());
}

TEST_CASE("entering the same class twice is harmless, another class is refused", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kRng, sc::ThreadClass::kBlock}));
  const auto child = in_seccomp_child([] {
    if (sc::current_class().has_value()) return 1;
    if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 2;
    if (!sc::enter(sc::ThreadClass::kRng)) return 3;
    auto other = sc::enter(sc::ThreadClass::kBlock);
    if (other || other.error().message.find("cannot enter blk") == std::string::npos) return 4;
    unsigned char b = 0;
    if (::getrandom(&b, 1, 0) != 1) return 5;
    return sc::current_class() == sc::ThreadClass::kRng ? 0 : 6;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
}

TEST_CASE("argument conditions hold: sockets, mappings, ioctls, clone", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kVsock, sc::ThreadClass::kRng, sc::ThreadClass::kVcpu, sc::ThreadClass::kMain}));
  SECTION("vsock: AF_UNIX streams only") {
    const auto child = in_seccomp_child([] {
      if (!enter_as(sc::ThreadClass::kVsock, "husk-vsock")) return 1;
      const int ok = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (ok < 0) return 2;
      ::close(ok);
      ::socket(AF_UNIX, SOCK_DGRAM, 0);
      return 3;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.status == sc::kExitSeccompViolation);
    CHECK(contains(child.err, "the vsock thread \"husk-vsock\" made a forbidden system call: socket (41)"));
  }
  SECTION("rng: no executable mapping") {
    const auto child = in_seccomp_child([] {
      if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
      void* rw = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (rw == MAP_FAILED) return 2;
      ::mprotect(rw, 4096, PROT_READ | PROT_EXEC);
      return 3;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.status == sc::kExitSeccompViolation);
    CHECK(contains(child.err, "forbidden system call: mprotect (10)"));
  }
  SECTION("vcpu: KVM requests pass the filter, a terminal request does not") {
    const auto child = in_seccomp_child([] {
      if (!enter_as(sc::ThreadClass::kVcpu, "husk-vcpu0")) return 1;
      // Not a KVM fd: the kernel says ENOTTY, the filter let it through.
      kvm_regs regs{};
      if (::ioctl(STDERR_FILENO, KVM_GET_REGS, &regs) != -1 || errno != ENOTTY) return 2;
      if (::ioctl(STDERR_FILENO, KVM_RUN, 0) != -1 || errno != ENOTTY) return 3;
      termios t{};
      ::ioctl(STDERR_FILENO, TCGETS, &t);
      return 4;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.status == sc::kExitSeccompViolation);
    CHECK(contains(child.err, "the vcpu thread \"husk-vcpu0\" made a forbidden system call: ioctl (16)"));
  }
  SECTION("main: threads yes, fork no") {
    const auto child = in_seccomp_child([] {
      if (!enter_as(sc::ThreadClass::kMain, "husk")) return 1;
      int ran = 0;
      std::thread t([&ran] { ran = 1; });
      t.join();
      if (ran != 1) return 2;
      ::fork();
      return 3;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.status == sc::kExitSeccompViolation);
    CHECK(contains(child.err, "the main thread \"husk\" made a forbidden system call: clone (56)"));
  }
}

TEST_CASE("main may start a watchdog thread, which enters its own class", "[unit][seccomp]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const auto child = in_seccomp_child([&fds] {
    // enter() compiles the watchdog's filter too, as main may start one.
    if (!enter_as(sc::ThreadClass::kMain, "husk")) return 1;
    // The watchdog's calls are all main's too: a thread main starts may be one.
    if (!sc::prepare({sc::ThreadClass::kWatchdog})) return 2;
    int result = 3;
    std::thread t([&result, &fds] {
      if (!enter_as(sc::ThreadClass::kWatchdog, "husk-watchdog")) return;
      std::mutex m;
      std::condition_variable cv;
      std::unique_lock lock(m);
      cv.wait_until(lock, std::chrono::steady_clock::now() + std::chrono::milliseconds(5));
      const char fired = '!';
      result = ::write(fds[1], &fired, 1) == 1 ? 0 : 4;
    });
    t.join();
    return result;
  });
  ::close(fds[1]);
  char got = 0;
  CHECK(::read(fds[0], &got, 1) == 1);
  ::close(fds[0]);
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
  CHECK(got == '!');
  CHECK(child.err.empty());
}

TEST_CASE("a vmm thread cannot start a vcpu thread: it would inherit the vmm filter", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kVmm, sc::ThreadClass::kVcpu}));
  const auto child = in_seccomp_child([] {
    if (!enter_as(sc::ThreadClass::kVmm, "husk-vmm")) return 1;
    auto refused = sc::prepare({sc::ThreadClass::kVcpu});
    if (refused) return 2;
    const std::string& why = refused.error().message;
    if (!contains(why, "a vmm thread cannot start a vcpu thread") || !contains(why, "KVM_RUN")) return 3;
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
}

TEST_CASE("a call only the inherited filter refuses is reported with that filter's class", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kMain, sc::ThreadClass::kRng}));
  const auto child = in_seccomp_child([] {
    if (!enter_as(sc::ThreadClass::kMain, "husk")) return 1;
    std::thread t([] {
      if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return;
      unsigned char b = 0;
      (void)::getrandom(&b, 1, 0);  // rng's, not main's
    });
    t.join();
    return 2;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == sc::kExitSeccompViolation);
  CHECK(child.err ==
        "husk: seccomp: the rng thread \"husk-rng\" made a forbidden system call: getrandom (318), refused by the "
        "main filter it inherited from the thread that started it; husk stops (exit 200)\n");
}

TEST_CASE("an x32 system call (another ABI's numbers) kills the process outright", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kRng}));
  const auto child = in_seccomp_child([] {
    const rlimit no_core{0, 0};  // SIGSYS dumps core by default
    ::setrlimit(RLIMIT_CORE, &no_core);
    if (!enter_as(sc::ThreadClass::kRng, "husk-rng")) return 1;
    constexpr long kX32SyscallBit = 0x40000000;
    ::syscall(kX32SyscallBit | SYS_getrandom, nullptr, 0, 0);
    return 2;
  });
  // SECCOMP_RET_KILL_PROCESS: SIGSYS with no handler run, no report.
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 128 + SIGSYS);
  CHECK(child.err.empty());
}
