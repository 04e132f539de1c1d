// The VMM process (runtime/vmm/vmm_process.h) with tiny guests on the
// machine's own /dev/kvm: it builds and runs the VM in a process of its
// own, every thread of it under its class's seccomp filter; it stops when
// asked, when husk goes away, and reports a seccomp violation of one of its
// device threads with the thread's class and the call.
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/vmm/vm_builder.h"
#include "runtime/vmm/vmm_process.h"
#include "seccomp/violation.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::TempDir;
using namespace husk;

namespace {

// A guest that spins forever (the VM runs until stopped), with an rng
// device so that the VMM has a device thread.
vmm::VmConfig spinning_vm(const TempDir& dir) {
  vmm::VmConfig config;
  config.kernel_path = dir.write("spin.elf", make_tiny_elf(Asm().print("up\n").spin().bytes));
  config.console_path = dir.file("console");
  config.rng = true;
  return config;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "Name:", "Seccomp:" and "NoNewPrivs:" of every thread of `pid`, by name.
std::map<std::string, std::string> thread_seccomp(pid_t pid) {
  std::map<std::string, std::string> out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(task.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream status(task + "/" + e->d_name + "/status");
    std::string line, name, mode, nnp;
    while (std::getline(status, line)) {
      if (line.rfind("Name:", 0) == 0) name = line.substr(line.find_first_not_of(" \t", 5));
      if (line.rfind("Seccomp:", 0) == 0) mode = line.substr(line.find_first_not_of(" \t", 8));
      if (line.rfind("NoNewPrivs:", 0) == 0) nnp = line.substr(line.find_first_not_of(" \t", 11));
    }
    // A thread that ended since the listing has no status left to read.
    if (!name.empty()) out[name] = mode + "/" + nnp;
  }
  ::closedir(d);
  return out;
}

std::set<std::string> open_fds(pid_t pid) {
  std::set<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') out.insert(e->d_name);
  }
  ::closedir(d);
  return out;
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds within = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

// wait(), but a VM still running after `within` is stopped first (the
// test then fails on the reason, instead of hanging).
Result<vmm::VmExit> wait_within(vmm::VmmProcess& vmm, std::chrono::seconds within = std::chrono::seconds(20)) {
  if (!eventually([&] { return vmm.stopped(); }, within)) {
    vmm.request_stop(vmm::VmExit{vmm::ExitReason::kHostStop, "the test's deadline"});
  }
  return vmm.wait();
}

}  // namespace

TEST_CASE("a VMM process runs the VM, every thread of it under its seccomp filter, and stops when asked", "[kvm]") {
  TempDir dir;
  auto vmm = vmm::VmmProcess::start(spinning_vm(dir), {});
  REQUIRE(vmm);
  const pid_t pid = (*vmm)->pid();
  REQUIRE(eventually([&] { return read_file(dir.file("console")) == "up\n"; }));
  CHECK_FALSE((*vmm)->stopped());

  // Threads by name: the control thread (the process's own name), the
  // vCPU, the rng device's I/O thread. Seccomp 2 is filter mode.
  const auto threads = thread_seccomp(pid);
  INFO("threads: " << threads.size());
  REQUIRE(threads.count("husk-vcpu0") == 1);
  REQUIRE(threads.count("husk-rng0") == 1);
  for (const auto& [name, state] : threads) {
    // KVM's own kernel threads (kvm-nx-lpage-recovery) show up here too.
    if (name.rfind("kvm-", 0) == 0) continue;
    INFO(name);
    CHECK(state == "2/1");
  }
  // Only stdin, stdout, stderr, the channel and the console, plus what the
  // VM made itself (KVM, eventfds, epoll, memory): nothing else of husk's.
  const auto fds = open_fds(pid);
  for (const std::string& fd : fds) {
    const std::string target = std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + fd).string();
    INFO(fd << " -> " << target);
    CHECK(target.find(dir.path().string() + "/spin.elf") == std::string::npos);
  }

  (*vmm)->request_stop(vmm::VmExit{vmm::ExitReason::kHostStop, "the test is done"});
  auto exit = (*vmm)->wait();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kHostStop);
  CHECK(exit->detail == "the test is done");
  CHECK((*vmm)->stopped());
  CHECK((*vmm)->timeline().first_run_ns > 0);
  CHECK(::kill(pid, 0) != 0);  // reaped
}

TEST_CASE("a VMM process reports the guest's own end and a build error", "[kvm]") {
  TempDir dir;
  vmm::VmConfig config;
  config.kernel_path = dir.write("reset.elf", make_tiny_elf(Asm().reset().bytes));
  config.console_path = dir.file("console");
  auto vmm = vmm::VmmProcess::start(config, {});
  REQUIRE(vmm);
  auto exit = wait_within(**vmm);
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kGuestReset);

  config.kernel_path = dir.file("no-such-kernel");
  auto failed = vmm::VmmProcess::start(config, {});
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message, Catch::Contains("no-such-kernel"));
}

TEST_CASE("a forbidden system call in a device thread ends the VMM with a report naming the thread and the call",
          "[kvm]") {
  TempDir dir;
  vmm::VmmProcessOptions options;
  // On the rng device's own I/O thread, once the VM runs: a TCP socket,
  // which no device thread may open.
  options.before_run = [](vmm::Machine& m) {
    EventLoop* loop = m.io_loop(seccomp::ThreadClass::kRng);
    const int efd = ::eventfd(1, EFD_CLOEXEC);
    if (loop == nullptr || efd < 0) ::_exit(90);
    (void)loop->add(efd, EPOLLIN, [](uint32_t) { (void)::socket(AF_INET, SOCK_STREAM, 0); });
  };
  auto vmm = vmm::VmmProcess::start(spinning_vm(dir), options);
  REQUIRE(vmm);
  auto exit = wait_within(**vmm);
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kSeccompViolation);
  INFO(exit->detail);
  CHECK_THAT(exit->detail, Catch::Contains("rng") && Catch::Contains("husk-rng0") && Catch::Contains("socket"));
}

TEST_CASE("the same forbidden call kills husk itself with exit 200 where its thread runs the VM", "[kvm]") {
  TempDir dir;
  int err[2];
  REQUIRE(::pipe(err) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::dup2(err[1], STDERR_FILENO);
    auto machine = vmm::build_machine(spinning_vm(dir));
    if (!machine) ::_exit(91);
    EventLoop* loop = (*machine)->io_loop(seccomp::ThreadClass::kRng);
    const int efd = ::eventfd(1, EFD_CLOEXEC);
    (void)loop->add(efd, EPOLLIN, [](uint32_t) { (void)::socket(AF_INET, SOCK_STREAM, 0); });
    ::alarm(20);  // a filter that let the call through would spin forever
    (*machine)->set_control_filter(vmm::confine_control_thread);
    (void)(*machine)->run();
    ::_exit(93);
  }
  ::close(err[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO(text);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == seccomp::kExitSeccompViolation);
  CHECK_THAT(text, Catch::Contains("rng") && Catch::Contains("socket"));
}

TEST_CASE("a VMM process whose husk is killed stops its VM and ends", "[kvm]") {
  TempDir dir;
  int report[2];
  REQUIRE(::pipe(report) == 0);
  // A stand-in for husk: starts a VMM process, says its pid, then waits.
  const pid_t husk = ::fork();
  REQUIRE(husk >= 0);
  if (husk == 0) {
    ::close(report[0]);
    auto vmm = vmm::VmmProcess::start(spinning_vm(dir), {});
    const pid_t vmm_pid = vmm ? (*vmm)->pid() : -1;
    (void)!::write(report[1], &vmm_pid, sizeof(vmm_pid));
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t vmm_pid = -1;
  REQUIRE(::read(report[0], &vmm_pid, sizeof(vmm_pid)) == sizeof(vmm_pid));
  ::close(report[0]);
  REQUIRE(vmm_pid > 0);
  REQUIRE(::kill(vmm_pid, 0) == 0);
  ::kill(husk, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(husk, &status, 0) == husk);
  // Not our child: it is gone once kill(pid, 0) fails (it was reparented
  // and reaped) or it is a zombie.
  CHECK(eventually([&] {
    if (::kill(vmm_pid, 0) != 0) return true;
    return read_file("/proc/" + std::to_string(vmm_pid) + "/stat").find(") Z") != std::string::npos;
  }));
}
