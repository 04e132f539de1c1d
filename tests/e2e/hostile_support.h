// Helpers for the hostile-guest end-to-end tests (tests/e2e/hostile_guest_test.cpp):
//   - monitored_husk: runs husk as a child (posix_spawn, output to files,
//     wait4 for its rusage) and samples it every 200 ms from /proc: CPU time
//     (with the part spent running the guest, /proc/PID/stat guest_time),
//     RSS with the guest RAM mapping apart from husk's own memory, open
//     descriptors, threads, the size and tail of the guest console file in
//     its husk-vm-* folder, and the allocated size of the unlinked files it
//     holds there (a copy-on-write disk's overlay);
//   - HostPeer: a host program on a guest-initiated vsock port (the Unix
//     socket "<vsock socket>_<port>" in husk's private folder) that accepts
//     and writes until the guest stops taking bytes, never reads, or never
//     accepts;
//   - figures over a step's time window (the result's timeline), and the
//     check that nothing is left: no husk-vm-* folder, no file at all in the
//     TMPDIR, no process, no open Unix socket under the sandbox, no KVM
//     kernel thread of husk's VM.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/run_support.h"

extern char** environ;

namespace husk::test::hostile {

using nlohmann::json;
namespace fs = std::filesystem;

inline double unix_ms_now() {
  return static_cast<double>(
             std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count()) /
         1e3;
}

inline constexpr uint64_t kMiB = 1ull << 20;

// One look at the husk process.
struct Sample {
  double t_ms = 0;              // Unix time, ms
  double cpu_s = 0;             // utime + stime of all its threads
  double guest_s = 0;           // of that, running the guest (guest_time)
  uint64_t rss = 0;             // VmRSS
  uint64_t hwm = 0;             // VmHWM: the peak RSS of husk's memory so far
  uint64_t guest_rss = 0;       // RSS of the guest RAM mapping
  uint64_t mapped_rss = 0;      // RSS of all mappings, read with guest_rss
  int fds = 0;
  int threads = 0;
  uint64_t console_bytes = 0;   // <husk-vm-*>/console.log
  uint64_t overlay_bytes = 0;   // allocated bytes of unlinked files under TMPDIR it holds open
  std::string console_tail;     // the console's last 4 KiB
  std::vector<std::string> fd_targets;  // "N -> target" of each open descriptor
  // husk's own memory: both figures from one read of smaps, so a guest
  // mapping that goes away between two reads is not counted as husk's.
  [[nodiscard]] uint64_t own_rss() const { return mapped_rss > guest_rss ? mapped_rss - guest_rss : 0; }
  [[nodiscard]] double host_cpu_s() const { return cpu_s - guest_s; }
};

inline std::string slurp(const std::string& path) { return run::read_file(path); }

// Fields of /proc/PID/stat after the command name (field 3 is index 0).
inline std::vector<std::string> stat_fields(pid_t pid) {
  const std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = s.rfind(')');
  std::vector<std::string> f;
  if (close == std::string::npos) return f;
  std::istringstream in(s.substr(close + 2));
  std::string w;
  while (in >> w) f.push_back(w);
  return f;
}

inline uint64_t status_kib(const std::string& status, const std::string& key) {
  const size_t at = status.find("\n" + key + ":");
  if (at == std::string::npos) return 0;
  return std::strtoull(status.c_str() + at + key.size() + 2, nullptr, 10);
}

// From one read of /proc/PID/smaps: the RSS of all mappings, and of the
// guest's RAM: every mapping husk marked MADV_DONTDUMP ("dd" in VmFlags;
// runtime/memory/guest_memory.cpp marks a VM's RAM so, a memfd or huge
// anonymous memory, and the kernel and initrd it maps over it from their
// files). VmFlags ends a mapping's entry, after its Rss.
struct MappedRss {
  uint64_t all = 0;
  uint64_t guest = 0;
};
inline MappedRss mapped_rss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  uint64_t rss = 0;  // the current mapping's
  MappedRss total;
  while (std::getline(in, line)) {
    if (line.rfind("Rss:", 0) == 0) {
      rss = std::strtoull(line.c_str() + 4, nullptr, 10) * 1024;
      total.all += rss;
    } else if (line.rfind("VmFlags:", 0) == 0) {
      if ((line + " ").find(" dd ") != std::string::npos) total.guest += rss;
      rss = 0;
    }
  }
  return total;
}

// The VMM process of husk `husk_pid` (the VM runs there, jailed or not:
// runtime/vmm/vmm_process.h): a descendant with a thread named husk-vcpu0;
// -1 while there is none.
inline pid_t vmm_process_of(pid_t husk_pid) {
  auto parent_of = [](pid_t p) -> pid_t {
    const std::string status = slurp("/proc/" + std::to_string(p) + "/status");
    const size_t at = status.find("\nPPid:");
    return at == std::string::npos ? -1 : static_cast<pid_t>(std::atoi(status.c_str() + at + 6));
  };
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return -1;
  pid_t found = -1;
  while (const dirent* e = ::readdir(d)) {
    const pid_t p = static_cast<pid_t>(std::atoi(e->d_name));
    if (p <= 0 || p == husk_pid) continue;
    pid_t up = parent_of(p);
    for (int depth = 0; depth < 3 && up > 1 && up != husk_pid; ++depth) up = parent_of(up);
    if (up != husk_pid) continue;
    const std::string task = "/proc/" + std::to_string(p) + "/task";
    if (DIR* t = ::opendir(task.c_str())) {
      while (const dirent* te = ::readdir(t)) {
        if (te->d_name[0] != '.' && slurp(task + "/" + te->d_name + "/comm") == "husk-vcpu0\n") found = p;
      }
      ::closedir(t);
    }
    if (found > 0) break;
  }
  ::closedir(d);
  return found;
}

inline std::optional<Sample> sample_husk(pid_t pid, const std::string& tmp, uint64_t guest_bytes) {
  static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  Sample s;
  s.t_ms = unix_ms_now();
  const std::vector<std::string> f = stat_fields(pid);
  // utime is field 14, stime 15, num_threads 20, guest_time 43.
  if (f.size() < 41 || f[0] == "Z") return std::nullopt;
  s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / tick;
  s.threads = std::stoi(f[17]);
  s.guest_s = std::stod(f[40]) / tick;
  const std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  s.rss = status_kib(status, "VmRSS") * 1024;
  s.hwm = status_kib(status, "VmHWM") * 1024;
  const MappedRss mapped = mapped_rss(pid);
  // No more than the guest's memory can be its RAM.
  s.guest_rss = std::min(mapped.guest, guest_bytes);
  s.mapped_rss = mapped.all;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = ::opendir(fd_dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      ++s.fds;
      char target[4096];
      const std::string link = fd_dir + "/" + e->d_name;
      const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      const std::string t(target, static_cast<size_t>(n));
      s.fd_targets.push_back(std::string(e->d_name) + " -> " + t);
      // An overlay: a nameless file in TMPDIR, or in a jailed VMM's folder
      // (a path of the jail's mount namespace, which this one cannot name).
      if (t.find("(deleted)") != std::string::npos && t.rfind("/memfd:", 0) != 0) {
        struct stat st {};
        if (::stat(link.c_str(), &st) == 0 && S_ISREG(st.st_mode)) s.overlay_bytes += uint64_t(st.st_blocks) * 512;
      }
    }
    ::closedir(d);
  }
  for (const std::string& dir : run::vm_folders(tmp)) {
    struct stat st {};
    const std::string console = dir + "/console.log";
    if (::stat(console.c_str(), &st) != 0) continue;
    s.console_bytes = static_cast<uint64_t>(st.st_size);
    std::ifstream in(console, std::ios::binary);
    const std::streamoff from = std::max<std::streamoff>(0, st.st_size - 4096);
    in.seekg(from);
    std::ostringstream tail;
    tail << in.rdbuf();
    s.console_tail = tail.str();
  }
  return s;
}

// A husk run watched from outside.
struct Monitored {
  pid_t pid = -1;
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  double seconds = 0;
  rusage usage{};
  std::string out;
  std::string err;
  json result;  // null when husk wrote none
  std::vector<Sample> samples;

  [[nodiscard]] double cpu_s() const {
    const auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return tv(usage.ru_utime) + tv(usage.ru_stime);
  }
  // The peak RSS, guest RAM included: VmHWM as last seen. (Not wait4's
  // ru_maxrss: Linux keeps in it the RSS of every memory the process had
  // before its exec, and posix_spawn's child shares the test program's.)
  [[nodiscard]] uint64_t max_rss() const {
    uint64_t m = 0;
    for (const Sample& s : samples) m = std::max(m, s.hwm);
    return m;
  }
  [[nodiscard]] uint64_t peak_own_rss() const {
    uint64_t m = 0;
    for (const Sample& s : samples) m = std::max(m, s.own_rss());
    return m;
  }
  // The sample with the most of husk's own memory (null when none).
  [[nodiscard]] const Sample* peak_own_sample() const {
    const Sample* p = nullptr;
    for (const Sample& s : samples) {
      if (p == nullptr || s.own_rss() > p->own_rss()) p = &s;
    }
    return p;
  }
  [[nodiscard]] uint64_t peak_guest_rss() const {
    uint64_t m = 0;
    for (const Sample& s : samples) m = std::max(m, s.guest_rss);
    return m;
  }
  [[nodiscard]] uint64_t peak_console() const {
    uint64_t m = 0;
    for (const Sample& s : samples) m = std::max(m, s.console_bytes);
    return m;
  }
  [[nodiscard]] uint64_t peak_overlay() const {
    uint64_t m = 0;
    for (const Sample& s : samples) m = std::max(m, s.overlay_bytes);
    return m;
  }
  [[nodiscard]] int peak_fds() const {
    int m = 0;
    for (const Sample& s : samples) m = std::max(m, s.fds);
    return m;
  }
  [[nodiscard]] int peak_threads() const {
    int m = 0;
    for (const Sample& s : samples) m = std::max(m, s.threads);
    return m;
  }
};

// `env TMPDIR=<sandbox> husk ARGS...`, sampled until it exits. `on_vm_dir`
// runs once, as soon as husk's husk-vm-* folder exists (before the guest
// boots), with its path. `guest_mib`: the guest's memory, to tell its RAM
// from husk's own in the RSS.
inline Monitored monitored_husk(run::Sandbox& sb, const std::vector<std::string>& args, double timeout_s,
                                uint64_t guest_mib, const std::function<void(const std::string&)>& on_vm_dir = {}) {
  Monitored m;
  const std::string out_path = sb.dir.file("husk-" + std::to_string(++sb.runs) + ".out");
  const std::string err_path = sb.dir.file("husk-" + std::to_string(sb.runs) + ".err");
  std::vector<std::string> argv{husk_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env{"TMPDIR=" + sb.tmp};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "TMPDIR=", 7) != 0) env.emplace_back(*e);
  }
  std::vector<char*> cargv, cenv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (std::string& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const auto start = std::chrono::steady_clock::now();
  const int rc = ::posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  m.pid = pid;

  bool dir_seen = !on_vm_dir;
  pid_t vmm_pid = -1;
  int status = 0;
  for (;;) {
    const pid_t r = ::wait4(pid, &status, WNOHANG, &m.usage);
    if (r == pid) break;
    if (!dir_seen) {
      const std::vector<std::string> dirs = run::vm_folders(sb.tmp);
      if (!dirs.empty()) {
        dir_seen = true;
        on_vm_dir(dirs.front());
      }
    }
    // The VM's resources are its VMM process's; husk's own until it exists.
    if (vmm_pid <= 0 || ::kill(vmm_pid, 0) != 0) vmm_pid = vmm_process_of(pid);
    if (auto s = sample_husk(vmm_pid > 0 ? vmm_pid : pid, sb.tmp, guest_mib * kMiB)) m.samples.push_back(std::move(*s));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > timeout_s && !m.timed_out) {
      m.timed_out = true;
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(dir_seen ? 200 : 10));
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status)) m.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) m.signal = WTERMSIG(status);
  m.out = slurp(out_path);
  m.err = slurp(err_path);
  return m;
}

// `husk run JOB --json --result FILE EXTRA...` with the built guest, watched.
inline Monitored monitored_run(run::Sandbox& sb, const std::string& job, uint64_t guest_mib,
                               const std::function<void(const std::string&)>& on_vm_dir = {},
                               double timeout_s = run::kRunTimeoutS) {
  const std::string result_path = sb.dir.file("result-" + std::to_string(sb.runs + 1) + ".json");
  Monitored m = monitored_husk(sb,
                               {"run", job, "--kernel", guest_file("vmlinux"), "--initrd",
                                guest_file("initramfs.cpio"), "--json", "--result", result_path},
                               timeout_s, guest_mib, on_vm_dir);
  INFO("husk stderr (tail): " << run::tail(m.err));
  REQUIRE_FALSE(m.timed_out);
  if (fs::exists(result_path)) {
    m.result = json::parse(slurp(result_path), nullptr, false);
    REQUIRE_FALSE(m.result.is_discarded());
    run::results().keep(result_path, job);
  }
  return m;
}

// A span of Unix time.
struct Window {
  double from_ms = 0;
  double to_ms = 0;
  [[nodiscard]] double seconds() const { return (to_ms - from_ms) / 1e3; }
};

// The time a run of the result took, in Unix ms, trimmed at both ends.
inline Window run_window(const json& result, const json& run, double trim_start_ms = 0, double trim_end_ms = 0) {
  const double base = result.at("timeline").at("vmm_start_unix_ms").get<double>();
  return Window{base + run.at("start_ms").get<double>() + trim_start_ms,
                base + run.at("end_ms").get<double>() - trim_end_ms};
}

// The samples taken inside `w`.
inline std::vector<const Sample*> samples_in(const Monitored& m, const Window& w) {
  std::vector<const Sample*> out;
  for (const Sample& s : m.samples) {
    if (s.t_ms >= w.from_ms && s.t_ms <= w.to_ms) out.push_back(&s);
  }
  return out;
}

// CPU seconds per second over the samples in `w` (first to last): all of
// husk's, and husk's own (without the time the guest ran). -1 when fewer
// than two samples fall in it.
struct CpuRate {
  double total = -1;
  double host = -1;
  double seconds = 0;
};
inline CpuRate cpu_rate(const Monitored& m, const Window& w) {
  const auto in = samples_in(m, w);
  CpuRate r;
  if (in.size() < 2) return r;
  const Sample& a = *in.front();
  const Sample& b = *in.back();
  r.seconds = (b.t_ms - a.t_ms) / 1e3;
  if (r.seconds <= 0) return r;
  r.total = (b.cpu_s - a.cpu_s) / r.seconds;
  r.host = (b.host_cpu_s() - a.host_cpu_s()) / r.seconds;
  return r;
}

// Everything the sandbox's runs could leave: husk-vm-* folders, any file in
// its TMPDIR (an overlay, a socket, a log), processes, Unix sockets bound
// under the sandbox that are still open.
inline std::vector<std::string> open_unix_sockets_under(const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(slurp("/proc/net/unix"));
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find(prefix);
    if (at != std::string::npos) out.push_back(line.substr(at));
  }
  return out;
}

// Kernel threads KVM made for the VMs of process `pid` ("kvm-pit/PID",
// "kvm-nx-lpage-recovery-PID"): they live as long as a VM's descriptor.
inline std::vector<std::string> kvm_threads_of(pid_t pid) {
  std::vector<std::string> out;
  const std::string a = "/" + std::to_string(pid), b = "-" + std::to_string(pid);
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string comm = slurp((e.path() / "comm").string());
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm.find("kvm") == std::string::npos) continue;
    const auto ends = [&](const std::string& x) {
      return comm.size() >= x.size() && comm.compare(comm.size() - x.size(), x.size(), x) == 0;
    };
    if (ends(a) || ends(b)) out.push_back(e.path().filename().string() + ": " + comm);
  }
  return out;
}

inline void check_nothing_left_behind(const run::Sandbox& sb) {
  run::check_nothing_left(sb);
  std::vector<std::string> left;
  for (const auto& e : fs::recursive_directory_iterator(sb.tmp)) left.push_back(e.path().string());
  CAPTURE(left);
  CHECK(left.empty());
  const std::vector<std::string> sockets = open_unix_sockets_under(sb.dir.path().string());
  CAPTURE(sockets);
  CHECK(sockets.empty());
}

inline void check_nothing_left_behind(const run::Sandbox& sb, const Monitored& m) {
  const std::vector<std::string> kvm = kvm_threads_of(m.pid);
  CAPTURE(kvm);
  CHECK(kvm.empty());
  check_nothing_left_behind(sb);
}


// A host program behind a guest-initiated vsock port.
class HostPeer {
 public:
  enum class Mode {
    kWriteUntilStall,  // accept every connection, write to it until it takes no more
    kNeverRead,        // accept every connection, never read from it
    kNeverAccept,      // listen with a small backlog, never accept
  };
  struct Conn {
    int fd = -1;
    uint64_t written = 0;
    double last_progress_ms = 0;
    bool closed = false;  // the other end went away (EPIPE, ECONNRESET, HUP)
  };

  HostPeer(Mode mode, uint64_t write_cap = 0, int backlog = 1024) : mode_(mode), write_cap_(write_cap), backlog_(backlog) {}
  HostPeer(const HostPeer&) = delete;
  HostPeer& operator=(const HostPeer&) = delete;
  ~HostPeer() { stop(); }

  // Binds and listens on `path`, then serves it on a thread.
  void start(const std::string& path) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    // The jailed VMM (uid 65534, no capabilities) connects to it: a Unix
    // socket's file needs write permission for that (docs/jail.md).
    bound_ = listener_ >= 0 && ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
             ::chmod(path.c_str(), 0666) == 0 && ::listen(listener_, backlog_) == 0;
    if (!bound_) std::fprintf(stderr, "hostile: HostPeer: cannot listen on %s: %s\n", path.c_str(), std::strerror(errno));
    thread_ = std::thread([this] { serve(); });
  }

  // Stops serving and closes every socket.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mutex_);
    for (Conn& c : conns_) {
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
    }
    if (listener_ >= 0) ::close(listener_);
    listener_ = -1;
  }

  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] std::vector<Conn> conns() const {
    std::lock_guard lock(mutex_);
    return conns_;
  }

 private:
  void serve() {
    static char chunk[65536];
    std::memset(chunk, 'h', sizeof(chunk));
    while (!stop_) {
      std::vector<pollfd> p;
      {
        std::lock_guard lock(mutex_);
        p.push_back(pollfd{listener_, static_cast<short>(mode_ == Mode::kNeverAccept ? 0 : POLLIN), 0});
        for (const Conn& c : conns_) {
          const bool want_out = mode_ == Mode::kWriteUntilStall && (write_cap_ == 0 || c.written < write_cap_);
          p.push_back(pollfd{c.closed ? -1 : c.fd, static_cast<short>(want_out ? POLLOUT : 0), 0});
        }
      }
      if (::poll(p.data(), p.size(), 100) <= 0) continue;
      std::lock_guard lock(mutex_);
      if (p[0].revents & POLLIN) {
        for (;;) {
          const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          conns_.push_back(Conn{fd, 0, unix_ms_now(), false});
        }
      }
      for (size_t i = 1; i < p.size(); ++i) {
        Conn& c = conns_[i - 1];
        if (p[i].revents & (POLLHUP | POLLERR)) c.closed = true;
        if (!(p[i].revents & POLLOUT) || c.closed) continue;
        while (write_cap_ == 0 || c.written < write_cap_) {
          const size_t want = write_cap_ == 0 ? sizeof(chunk) : std::min<uint64_t>(sizeof(chunk), write_cap_ - c.written);
          const ssize_t n = ::send(c.fd, chunk, want, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n > 0) {
            c.written += static_cast<uint64_t>(n);
            c.last_progress_ms = unix_ms_now();
            continue;
          }
          if (n < 0 && errno != EAGAIN && errno != EINTR) c.closed = true;
          break;
        }
      }
    }
  }

  Mode mode_;
  uint64_t write_cap_;
  int backlog_;
  int listener_ = -1;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Conn> conns_;
  std::thread thread_;
};

// The descriptors open in `b` and not in `a` (by number and target).
inline std::vector<std::string> new_fds(const Sample& a, const Sample& b) {
  std::vector<std::string> out;
  for (const std::string& t : b.fd_targets) {
    if (std::find(a.fd_targets.begin(), a.fd_targets.end(), t) == a.fd_targets.end()) out.push_back(t);
  }
  return out;
}

// Figures for the report, one line on stderr (the test host passes it on).
inline void report(const std::string& what, const Monitored& m) {
  std::fprintf(stderr,
               "hostile: %s: husk wall %.1f s, CPU %.2f s (wait4), peak RSS %.1f MiB (VmHWM; own %.1f MiB, "
               "guest RAM %.1f MiB), peak fds %d, peak threads %d, peak console %.1f KiB, peak overlay %.1f MiB, "
               "exit %d signal %d\n",
               what.c_str(), m.seconds, m.cpu_s(), static_cast<double>(m.max_rss()) / kMiB,
               static_cast<double>(m.peak_own_rss()) / kMiB, static_cast<double>(m.peak_guest_rss()) / kMiB,
               m.peak_fds(), m.peak_threads(), static_cast<double>(m.peak_console()) / 1024,
               static_cast<double>(m.peak_overlay()) / kMiB, m.exit_code, m.signal);
  if (const Sample* p = m.peak_own_sample(); p != nullptr && !m.samples.empty()) {
    std::fprintf(stderr,
                 "hostile:   own RSS peak %.1f MiB at %.1f s of %.1f s (VmRSS %.1f MiB, mapped %.1f MiB, guest RAM "
                 "%.1f MiB, %d fds)\n",
                 static_cast<double>(p->own_rss()) / kMiB, (p->t_ms - m.samples.front().t_ms) / 1e3,
                 (m.samples.back().t_ms - m.samples.front().t_ms) / 1e3, static_cast<double>(p->rss) / kMiB,
                 static_cast<double>(p->mapped_rss) / kMiB, static_cast<double>(p->guest_rss) / kMiB, p->fds);
  }
  if (m.signal != 0 || (m.result.is_null() && m.exit_code != 0)) {
    std::fprintf(stderr, "hostile:   husk stderr (tail):\n%s\n", run::tail(m.err, 3000).c_str());
  }
}

// cc -static the guest program into `to`.
inline void build_guest_program(const std::string& to) {
  const std::string src = (run::kE2eDir / "guest" / "hostile_guest.c").string();
  const ProcessResult cc = run_process({"cc", "-static", "-O2", "-o", to, src}, 120);
  INFO("cc: " << cc.err);
  REQUIRE(cc.exit_code == 0);
}

}  // namespace husk::test::hostile
