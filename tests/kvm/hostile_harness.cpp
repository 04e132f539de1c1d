#include "tests/kvm/hostile_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/common/unique_fd.h"
#include "runtime/vmm/vm_builder.h"
#include "tests/kvm/proc_stats.h"

namespace husk::test {

namespace fs = std::filesystem;

namespace {

double monotonic() { return proc::clock_seconds(CLOCK_MONOTONIC); }
double process_cpu() { return proc::clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

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
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof(addr.sun_path)) return UniqueFd();
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return UniqueFd();
  if (::listen(fd.get(), 4096) != 0) return UniqueFd();
  return fd;
}

// The child's reports to the parent: records of "key length\n" and then
// `length` bytes, written as soon as a figure is known.
class Reporter {
 public:
  explicit Reporter(int fd) : fd_(fd) {}
  void put(const std::string& key, const std::string& value) const {
    const std::string record = fmt::format("{} {}\n", key, value.size()) + value;
    size_t done = 0;
    while (done < record.size()) {
      const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  void put(const std::string& key, double v) const { put(key, fmt::format("{:.9f}", v)); }
  void put(const std::string& key, int64_t v) const { put(key, std::to_string(v)); }
  void put(const std::string& key, int v) const { put(key, std::to_string(v)); }
  void phase(const std::string& name) const { put("phase", name); }

 private:
  int fd_;
};

// The child's whole run. It must not use Catch (the parent's test state is
// not the child's): every outcome is a record.
void run_child(const GuestProgram& program, const HostileOptions& options, const Reporter& out) {
  out.put("fds_before", proc::count_fds());
  out.put("threads_before", proc::count_threads());
  const int64_t rss_before = proc::rss_kib();
  out.put("rss_before_kib", rss_before);

  // $TMPDIR: a private folder (the child's own environment).
  std::string tmpl = (fs::temp_directory_path() / "husk-hostile-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return out.put("error", "mkdtemp failed");
  const fs::path tmp = tmpl;
  out.put("tmpdir", tmp.string());
  ::setenv("TMPDIR", tmp.c_str(), 1);
  const fs::path work = tmp / "work";
  fs::create_directory(work);

  vmm::VmConfig config;
  config.kernel_path = (work / "guest.elf").string();
  config.console_path = (work / "console").string();
  config.memory_mib = kGuestMemoryMib;
  const std::string disk = (work / "disk.img").string();
  if (!write_file(config.kernel_path, program.elf()) || !write_file(disk, disk_image())) {
    return out.put("error", "cannot write the guest or the disk image");
  }
  config.disks.push_back(vmm::DiskConfig{disk, vmm::DiskMode::kCopyOnWrite});
  config.rng = true;
  const std::string uds = (work / "v.sock").string();
  config.vsock = vmm::VsockConfig{uds, kGuestCid};
  const std::string listener_path = fmt::format("{}_{}", uds, kVsockListenPort);
  UniqueFd listener;
  if (options.vsock_listener) {
    listener = listen_unix(listener_path);
    if (!listener) return out.put("error", "cannot listen on " + listener_path);
  }
  {
    auto machine = vmm::build_machine(config);
    if (!machine) return out.put("error", "build_machine: " + machine.error().message);
    out.phase("built");
    const std::vector<int> tids_before = proc::thread_ids();

    Result<vmm::VmExit> result = vmm::VmExit{};
    const double start = monotonic();
    const double start_cpu = process_cpu();
    std::thread runner([&] { result = (*machine)->run(); });

    // Until the guest's DONE (or a VM that stopped by itself).
    int fds_peak = 0;
    int64_t rss_peak = 0;
    bool done = false;
    for (;;) {
      fds_peak = std::max(fds_peak, proc::count_fds());
      rss_peak = std::max(rss_peak, proc::rss_kib());
      if (read_file(config.console_path).find("DONE\n") != std::string::npos) {
        done = true;
        break;
      }
      if ((*machine)->stopped() || monotonic() - start > options.timeout_seconds) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    out.put("done", done ? 1 : 0);
    out.put("attack_seconds", monotonic() - start);
    out.put("attack_cpu_seconds", process_cpu() - start_cpu);
    const int64_t rss_done = proc::rss_kib();
    out.put("rss_done_kib", rss_done);
    out.put("rss_peak_kib", std::max(rss_peak, rss_done));
    out.put("fds_peak", std::max(fds_peak, proc::count_fds()));
    out.put("console", read_file(config.console_path));
    out.phase("done");

    // The idle window: the guest halted; nothing on the host should run.
    std::vector<ThreadCpu> threads;
    for (int tid : proc::thread_ids()) {
      if (std::find(tids_before.begin(), tids_before.end(), tid) != tids_before.end()) continue;
      threads.push_back(ThreadCpu{tid, proc::thread_role(tid), proc::thread_cpu_seconds(tid), 0});
    }
    const double window_start = monotonic();
    const double window_start_cpu = process_cpu();
    std::vector<int> runnable(threads.size(), 0);
    int samples = 0;
    while (monotonic() - window_start < options.window_seconds) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      for (size_t i = 0; i < threads.size(); ++i) runnable[i] += proc::thread_runnable(threads[i].tid) ? 1 : 0;
      ++samples;
    }
    out.put("window_cpu_seconds", process_cpu() - window_start_cpu);
    out.put("window_seconds", monotonic() - window_start);
    for (size_t i = 0; i < threads.size(); ++i) {
      const double end = proc::thread_cpu_seconds(threads[i].tid);
      const double cpu = end >= 0 && threads[i].cpu_seconds >= 0 ? end - threads[i].cpu_seconds : 0;
      const double share = samples > 0 ? static_cast<double>(runnable[i]) / samples : 0;
      out.put("thread", fmt::format("{} {:.9f} {:.6f} {}", threads[i].tid, cpu, share, threads[i].role));
    }
    out.put("rss_end_kib", proc::rss_kib());
    out.phase("window");

    out.put("vm_stopped_early", (*machine)->stopped() ? 1 : 0);
    (*machine)->request_stop(vmm::VmExit{vmm::ExitReason::kHostStop, "hostile test: window over"});
    runner.join();
    if (!result) return out.put("error", "Machine::run: " + result.error().message);
    out.put("exit_reason", static_cast<int>(result->reason));
    out.put("exit_detail", result->detail);
    out.put("console", read_file(config.console_path));
    out.phase("stopped");
  }
  out.phase("destroyed");
  // Everything of the VM is gone now; only the test's own files remain.
  listener.reset();
  std::error_code ec;
  for (const std::string& mine : {config.kernel_path, config.console_path, disk, listener_path}) {
    fs::remove(mine, ec);
  }
  for (const auto& e : fs::recursive_directory_iterator(tmp, ec)) {
    if (e.path() != work) out.put("leftover", e.path().string());
  }
  fs::remove_all(tmp, ec);
  out.put("fds_after", proc::count_fds());
  out.put("threads_after", proc::count_threads());
  out.phase("complete");
}

// The parent's side: one record into `run`.
void take_record(HostileRun& run, std::string& tmpdir, const std::string& key, const std::string& v) {
  auto num = [&] { return std::stod(v); };
  auto i64 = [&] { return std::stoll(v); };
  if (key == "phase") run.phase = v;
  else if (key == "error") run.host_failure = "setting up the run: " + v;
  else if (key == "tmpdir") tmpdir = v;
  else if (key == "console") run.console = v;
  else if (key == "done") run.done = i64() != 0;
  else if (key == "vm_stopped_early") run.vm_stopped_early = i64() != 0;
  else if (key == "exit_reason") run.exit.reason = static_cast<vmm::ExitReason>(i64());
  else if (key == "exit_detail") run.exit.detail = v;
  else if (key == "attack_seconds") run.attack_seconds = num();
  else if (key == "attack_cpu_seconds") run.attack_cpu_seconds = num();
  else if (key == "window_seconds") run.window_seconds = num();
  else if (key == "window_cpu_seconds") run.window_cpu_seconds = num();
  else if (key == "rss_before_kib") run.rss_before_kib = i64();
  else if (key == "rss_done_kib") run.rss_done_kib = i64();
  else if (key == "rss_peak_kib") run.rss_peak_kib = i64();
  else if (key == "rss_end_kib") run.rss_end_kib = i64();
  else if (key == "fds_before") run.fds_before = static_cast<int>(i64());
  else if (key == "fds_peak") run.fds_peak = static_cast<int>(i64());
  else if (key == "fds_after") run.fds_after = static_cast<int>(i64());
  else if (key == "threads_before") run.threads_before = static_cast<int>(i64());
  else if (key == "threads_after") run.threads_after = static_cast<int>(i64());
  else if (key == "leftover") run.leftovers.push_back(v);
  else if (key == "thread") {
    ThreadCpu t;
    std::istringstream in(v);
    in >> t.tid >> t.cpu_seconds >> t.runnable_share;
    std::getline(in >> std::ws, t.role);
    run.window_threads.push_back(t);
  }
}

// Splits the records in `buffer`, leaving an incomplete one there.
void take_records(HostileRun& run, std::string& tmpdir, std::string& buffer) {
  for (;;) {
    const size_t nl = buffer.find('\n');
    if (nl == std::string::npos) return;
    std::istringstream header(buffer.substr(0, nl));
    std::string key;
    size_t len = 0;
    header >> key >> len;
    if (buffer.size() < nl + 1 + len) return;
    take_record(run, tmpdir, key, buffer.substr(nl + 1, len));
    buffer.erase(0, nl + 1 + len);
  }
}

}  // namespace

uint64_t HostileRun::value(const std::string& label) const {
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
      "{}attack {:.3f} s (process cpu {:.3f} s); idle window {:.2f} s: process cpu {:.4f} s ({:.1f}%), "
      "VM threads [{}]; rss {:+} KiB over the run (peak {:+}), {:+} KiB while idle; fds {} -> {} (peak {}); "
      "threads {} -> {}",
      host_failure.empty() ? "" : "HOST FAILURE: " + host_failure + "; ", attack_seconds, attack_cpu_seconds,
      window_seconds, window_cpu_seconds, 100 * window_cpu_share(), threads, rss_end_kib - rss_before_kib,
      rss_peak_kib - rss_before_kib, rss_end_kib - rss_done_kib, fds_before, fds_after, fds_peak, threads_before,
      threads_after);
}

HostileRun run_hostile_guest(const GuestProgram& program, const HostileOptions& options) {
  HostileRun run;
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // A crash must end the child, not run Catch's handlers in it.
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::signal(sig, SIG_DFL);
    read_end.reset();
    run_child(program, options, Reporter(write_end.get()));
    ::_exit(0);
  }
  write_end.reset();

  // Read until the child closes its end; a child that takes longer than
  // the guest's time, the window and as long again for the rest is hung.
  const double deadline = monotonic() + 2 * options.timeout_seconds + options.window_seconds;
  std::string buffer;
  std::string tmpdir;
  bool hung = false;
  for (;;) {
    const double left = deadline - monotonic();
    if (left <= 0) {
      hung = true;
      break;
    }
    pollfd p{read_end.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left * 1000) + 1) <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(read_end.get(), chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    take_records(run, tmpdir, buffer);
  }
  if (hung) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (hung) {
    run.host_failure = fmt::format("the host hung after phase '{}' (killed after {:.0f} s)", run.phase,
                                   2 * options.timeout_seconds + options.window_seconds);
  } else if (WIFSIGNALED(status)) {
    run.host_failure = fmt::format("the host was killed by {} after phase '{}'", ::sigabbrev_np(WTERMSIG(status)),
                                   run.phase);
  } else if (run.host_failure.empty() && run.phase != "complete") {
    run.host_failure = fmt::format("the host exited with status {} after phase '{}'", WEXITSTATUS(status), run.phase);
  }
  // A child that died cannot clean up after itself.
  if (!tmpdir.empty() && fs::exists(tmpdir)) {
    std::error_code ec;
    fs::remove_all(tmpdir, ec);
  }
  run.values = parse_guest_report(run.console);
  if (std::getenv("HUSK_HOSTILE_VERBOSE") != nullptr) {
    fmt::print(stderr, "[hostile] {}: {}\n", Catch::getResultCapture().getCurrentTestName(), run.summary());
  }
  return run;
}

void check_host_held(const HostileRun& run, int64_t rss_limit_kib) {
  INFO(run.summary());
  INFO("console:\n" << run.console);
  INFO("VM exit: " << vmm::exit_reason_name(run.exit.reason) << ": " << run.exit.detail);
  CHECK(run.host_failure.empty());
  CHECK(run.done);
  CHECK_FALSE(run.vm_stopped_early);
  // No spin. Idle measures about 1% of the window (most of it this
  // sampling) and no runnable samples; a spinning thread is runnable in
  // nearly every sample even when a loaded 2-core machine gives it only a
  // third of a CPU.
  CHECK(run.window_cpu_share() < 0.5);
  for (const ThreadCpu& t : run.window_threads) {
    INFO("thread " << t.tid << " (" << t.role << ")");
    CHECK(t.cpu_seconds < 0.2 * run.window_seconds);
    CHECK(t.runnable_share < 0.2);
  }
  CHECK(run.rss_end_kib - run.rss_before_kib < rss_limit_kib);
  CHECK(run.rss_peak_kib - run.rss_before_kib < rss_limit_kib);
  CHECK(run.rss_end_kib - run.rss_done_kib < 2048);
  if (run.phase == "complete") {
    CHECK(run.fds_after == run.fds_before);
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer starts a background thread of its own on first use.
    CHECK(run.threads_after <= run.threads_before + 1);
#else
    CHECK(run.threads_after == run.threads_before);
#endif
    CHECK(run.leftovers.empty());
  }
}

}  // namespace husk::test
