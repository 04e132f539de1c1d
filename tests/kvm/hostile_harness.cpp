#include "tests/kvm/hostile_harness.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/common/unique_fd.h"
#include "runtime/vmm/vm_builder.h"

namespace husk::test {

namespace fs = std::filesystem;

namespace {

double now_seconds(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

int count_entries(const char* dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

// Open fds of this process (the directory stream's own fd counts every time,
// so the counts compare).
int count_fds() { return count_entries("/proc/self/fd"); }
int count_threads() { return count_entries("/proc/self/task"); }

std::vector<int> thread_ids() {
  std::vector<int> tids;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) tids.push_back(std::stoi(e.path().filename()));
  return tids;
}

int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// A thread's CPU time through its per-thread CPU clock (Linux encodes the
// tid in the clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
double thread_cpu_seconds(int tid) {
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  return now_seconds(clock);
}

// What a VM thread is: its name when it has its own (KVM's helper tasks
// do), else the system call it sleeps in.
std::string thread_role(int tid) {
  std::string comm;
  std::string own;
  std::getline(std::ifstream(fmt::format("/proc/self/task/{}/comm", tid)), comm);
  std::getline(std::ifstream("/proc/self/comm"), own);
  if (!comm.empty() && comm != own) return comm;
  std::ifstream in(fmt::format("/proc/self/task/{}/syscall", tid));
  std::string first;
  in >> first;
  if (first == "16") return "vcpu";                                       // ioctl(KVM_RUN)
  if (first == "232" || first == "281" || first == "441") return "event-loop";  // epoll_wait
  if (first == "7" || first == "271") return "control";                   // poll
  if (first == "202") return "waiting";                                   // futex
  if (first == "running") return "running";
  return first.empty() ? "unknown" : "syscall " + first;
}

// Whether a thread is running or waiting for a CPU ('R' in its stat).
bool thread_runnable(int tid) {
  std::ifstream in(fmt::format("/proc/self/task/{}/stat", tid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'R';
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// $TMPDIR pointed at a fresh private folder for the length of a run, so
// whatever the runtime creates there is seen (and other tests' files are
// not).
class PrivateTmpdir {
 public:
  PrivateTmpdir() {
    const char* old = std::getenv("TMPDIR");
    if (old != nullptr) old_ = old;
    had_old_ = old != nullptr;
    std::string tmpl = (fs::temp_directory_path() / "husk-hostile-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
    ::setenv("TMPDIR", path_.c_str(), 1);
  }
  ~PrivateTmpdir() {
    if (had_old_) {
      ::setenv("TMPDIR", old_.c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  PrivateTmpdir(const PrivateTmpdir&) = delete;
  PrivateTmpdir& operator=(const PrivateTmpdir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::string old_;
  bool had_old_ = false;
};

// A disk whose sector s holds the 32-bit word 0x5ec70000 + s, repeated.
std::vector<uint8_t> disk_image() {
  std::vector<uint8_t> disk(kDiskBytes);
  for (uint64_t off = 0; off < kDiskBytes; off += 4) {
    const uint32_t word = 0x5ec70000u + static_cast<uint32_t>(off / 512);
    std::memcpy(disk.data() + off, &word, 4);
  }
  return disk;
}

UniqueFd listen_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd.get(), 4096) == 0);
  return fd;
}

}  // namespace

uint32_t HostileRun::value(const std::string& label) const {
  auto it = values.find(label);
  INFO("the guest did not report " << label << "; console:\n" << console);
  REQUIRE(it != values.end());
  return it->second;
}

std::string HostileRun::summary() const {
  std::string threads;
  for (const ThreadCpu& t : window_threads) {
    threads += fmt::format("{}{} {:.4f} s/{:.0f}% runnable", threads.empty() ? "" : ", ", t.role, t.cpu_seconds,
                           100 * t.runnable_share);
  }
  return fmt::format(
      "attack {:.3f} s (process cpu {:.3f} s); idle window {:.2f} s: process cpu {:.4f} s ({:.1f}%), "
      "VM threads [{}]; rss {:+} KiB over the run (peak {:+}), {:+} KiB while idle; fds {} -> {} (peak {}); "
      "threads {} -> {}",
      attack_seconds, attack_cpu_seconds, window_seconds, window_cpu_seconds, 100 * window_cpu_share(), threads,
      rss_end_kib - rss_before_kib, rss_peak_kib - rss_before_kib, rss_end_kib - rss_done_kib, fds_before,
      fds_after, fds_peak, threads_before, threads_after);
}

HostileRun run_hostile_guest(const GuestProgram& program, const HostileOptions& options) {
  HostileRun run;
  run.fds_before = count_fds();
  run.threads_before = count_threads();
  run.rss_before_kib = rss_kib();
  {
    PrivateTmpdir tmp;
    const fs::path work = tmp.path() / "work";
    fs::create_directory(work);
    vmm::VmConfig config;
    config.kernel_path = (work / "guest.elf").string();
    write_file(config.kernel_path, program.elf());
    config.console_path = (work / "console").string();
    config.memory_mib = kGuestMemoryMib;
    const std::string disk = (work / "disk.img").string();
    write_file(disk, disk_image());
    config.disks.push_back(vmm::DiskConfig{disk, vmm::DiskMode::kCopyOnWrite});
    config.rng = true;
    const std::string uds = (work / "v.sock").string();
    config.vsock = vmm::VsockConfig{uds, kGuestCid};
    const std::string listener_path = fmt::format("{}_{}", uds, kVsockListenPort);
    UniqueFd listener;
    if (options.vsock_listener) listener = listen_unix(listener_path);
    {
      auto machine = vmm::build_machine(config);
      INFO((machine ? "" : machine.error().message));
      REQUIRE(machine);
      const std::vector<int> tids_before = thread_ids();

      Result<vmm::VmExit> result = vmm::VmExit{};
      const double start = now_seconds(CLOCK_MONOTONIC);
      const double start_cpu = now_seconds(CLOCK_PROCESS_CPUTIME_ID);
      std::thread runner([&] { result = (*machine)->run(); });

      // Wait for the guest's DONE (or a VM that stopped by itself).
      for (;;) {
        run.fds_peak = std::max(run.fds_peak, count_fds());
        run.rss_peak_kib = std::max(run.rss_peak_kib, rss_kib());
        run.console = read_file(config.console_path);
        if (run.console.find("DONE\n") != std::string::npos) {
          run.done = true;
          break;
        }
        if ((*machine)->stopped() || now_seconds(CLOCK_MONOTONIC) - start > options.timeout_seconds) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      run.attack_seconds = now_seconds(CLOCK_MONOTONIC) - start;
      run.attack_cpu_seconds = now_seconds(CLOCK_PROCESS_CPUTIME_ID) - start_cpu;
      run.rss_done_kib = rss_kib();
      run.rss_peak_kib = std::max(run.rss_peak_kib, run.rss_done_kib);
      run.fds_peak = std::max(run.fds_peak, count_fds());

      // The idle window: the guest halted; nothing on the host should run.
      std::vector<ThreadCpu> threads;
      for (int tid : thread_ids()) {
        if (std::find(tids_before.begin(), tids_before.end(), tid) != tids_before.end()) continue;
        threads.push_back(ThreadCpu{tid, thread_role(tid), thread_cpu_seconds(tid)});
      }
      const double window_start = now_seconds(CLOCK_MONOTONIC);
      const double window_start_cpu = now_seconds(CLOCK_PROCESS_CPUTIME_ID);
      std::vector<int> runnable(threads.size(), 0);
      int samples = 0;
      while (now_seconds(CLOCK_MONOTONIC) - window_start < options.window_seconds) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        for (size_t i = 0; i < threads.size(); ++i) runnable[i] += thread_runnable(threads[i].tid) ? 1 : 0;
        ++samples;
      }
      for (size_t i = 0; i < threads.size(); ++i) {
        threads[i].runnable_share = samples > 0 ? static_cast<double>(runnable[i]) / samples : 0;
      }
      run.window_cpu_seconds = now_seconds(CLOCK_PROCESS_CPUTIME_ID) - window_start_cpu;
      run.window_seconds = now_seconds(CLOCK_MONOTONIC) - window_start;
      for (ThreadCpu& t : threads) {
        const double end = thread_cpu_seconds(t.tid);
        t.cpu_seconds = end >= 0 && t.cpu_seconds >= 0 ? end - t.cpu_seconds : 0;
      }
      run.window_threads = threads;
      run.rss_end_kib = rss_kib();

      run.vm_stopped_early = (*machine)->stopped();
      (*machine)->request_stop(vmm::VmExit{vmm::ExitReason::kHostStop, "hostile test: window over"});
      runner.join();
      REQUIRE(result);
      run.exit = *result;
      run.console = read_file(config.console_path);
      run.values = parse_guest_report(run.console);
    }
    // Everything of the VM is gone now; only the test's own files remain.
    listener.reset();
    std::error_code ec;
    for (const std::string& mine : {config.kernel_path, config.console_path, disk, listener_path}) {
      fs::remove(mine, ec);
    }
    for (const auto& e : fs::recursive_directory_iterator(tmp.path(), ec)) {
      if (e.path() != work) run.leftovers.push_back(e.path().string());
    }
    run.fds_after = count_fds();
  }
  run.threads_after = count_threads();
  if (std::getenv("HUSK_HOSTILE_VERBOSE") != nullptr) {
    fmt::print(stderr, "[hostile] {}: {}\n", Catch::getResultCapture().getCurrentTestName(), run.summary());
  }
  return run;
}

void check_host_held(const HostileRun& run, int64_t rss_limit_kib) {
  INFO(run.summary());
  INFO("console:\n" << run.console);
  INFO("VM exit: " << vmm::exit_reason_name(run.exit.reason) << ": " << run.exit.detail);
  CHECK(run.done);
  CHECK_FALSE(run.vm_stopped_early);
  // No spin. Idle measures about 0.05% of the window and no runnable
  // samples; a spinning thread is runnable in nearly every sample even when
  // a loaded 2-core machine gives it only a third of a CPU.
  CHECK(run.window_cpu_share() < 0.5);
  for (const ThreadCpu& t : run.window_threads) {
    INFO("thread " << t.tid << " (" << t.role << ")");
    CHECK(t.cpu_seconds < 0.2 * run.window_seconds);
    CHECK(t.runnable_share < 0.2);
  }
  CHECK(run.rss_end_kib - run.rss_before_kib < rss_limit_kib);
  CHECK(run.rss_peak_kib - run.rss_before_kib < rss_limit_kib);
  CHECK(run.rss_end_kib - run.rss_done_kib < 2048);
  CHECK(run.fds_after == run.fds_before);
  CHECK(run.threads_after == run.threads_before);
  CHECK(run.leftovers.empty());
}

}  // namespace husk::test
