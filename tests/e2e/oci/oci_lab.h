// The OCI e2e tests' lab (tests/e2e/oci_test.cpp): containerd with ctr,
// and Podman, from Debian, driving an OCI runtime by path, on the machine
// that runs the guests (the nested test host: a chroot into this machine's
// read-only root with /tmp and /run as tmpfs; tests/e2e/oci/README.md says
// what each needs there). One containerd and one Podman store per test
// program, made on first use and torn down at its exit: a daemon and an
// image import take seconds in the test host, so the cases share them.
//
// The runtime is one variable: HUSK_OCI_RUNTIME (a path) when set, else the
// husk-oci built beside husk. The clients call it through a wrapper script
// in the lab's folder that logs each command line (shown when a case fails)
// and gives husk-oci its kernel, initramfs and image cache, which the
// daemons' environment does not carry.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/guest_session.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace husk::test::oci {

namespace fs = std::filesystem;

// The image every case runs (tests/e2e/oci/make_image.py).
inline constexpr const char* kImage = "localhost/husk-busybox:latest";
// Seconds for one client command: a container boot in the test host plus
// the clients' own start (podman takes ~5 s there before it does anything).
inline constexpr double kClientTimeoutS = 240;

inline const fs::path kOciDir = fs::path(__FILE__).parent_path();

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

// The build folder: husk is <build>/bin/husk.
inline fs::path build_dir() { return fs::path(husk_bin()).parent_path().parent_path(); }

inline std::string runtime_path() {
  return env_or("HUSK_OCI_RUNTIME", (fs::path(husk_bin()).parent_path() / "husk-oci").string());
}

// The OCI archive, built once into the build folder (cached by its inputs).
inline std::string image_archive() {
  static const std::string path = [] {
    const ProcessResult r =
        run_process({"python3", (kOciDir / "make_image.py").string(), (build_dir() / "oci").string()}, 120);
    if (r.exit_code != 0) throw std::runtime_error("make_image.py failed: " + r.err);
    std::string out = r.out;
    while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
    return out;
  }();
  return path;
}

// Polls `ready` until it holds or `seconds` pass; returns whether it held.
template <typename F>
bool wait_until(F&& ready, double seconds, int step_ms = 200) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    if (ready()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
}

// A process of the machine: pid, its executable and command line.
struct Proc {
  int pid = 0;
  std::string exe;
  std::string cmdline;
};

inline std::vector<Proc> processes() {
  std::vector<Proc> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    Proc p;
    p.pid = std::stoi(pid);
    std::error_code ec;
    p.exe = fs::read_symlink(e.path() / "exe", ec).string();
    p.cmdline = slurp(e.path() / "cmdline");
    std::replace(p.cmdline.begin(), p.cmdline.end(), '\0', ' ');
    out.push_back(p);
  }
  return out;
}

// The lab's common part: a folder (on /tmp: tmpfs in the test host) with
// the runtime wrapper, its log and husk-oci's settings.
class LabBase {
 public:
  // `default_root`: the runtime's --root for calls that give none (below).
  explicit LabBase(bool default_root = false) {
    const std::string runtime = runtime_path();
    if (::access(runtime.c_str(), X_OK) != 0) {
      throw std::runtime_error("no OCI runtime at " + runtime + " (build the husk-oci target, or set HUSK_OCI_RUNTIME)");
    }
    runtime_real_ = fs::canonical(runtime).string();
    fs::create_directories(build_dir() / "oci" / "husk-oci-cache");
    wrapper_ = dir_.file("runtime");
    calls_ = dir_.file("runtime-calls.log");
    std::ofstream w(wrapper_);
    // The kernel and initramfs of this test run, the image cache in the build
    // folder (kept across runs: the root disks are cached by content), each
    // call's command line into the log. exec: the keeper husk-oci leaves is
    // husk-oci itself, as it would be without the wrapper.
    w << "#!/bin/sh\n"
      << "export HUSK_KERNEL='" << guest_file("vmlinux") << "' HUSK_INITRD='" << guest_file("initramfs.cpio")
      << "'\nexport HUSK_OCI_CACHE='" << (build_dir() / "oci" / "husk-oci-cache").string() << "'\n"
      << "{ date +%T.%N | tr -d '\\n'; for a in \"$@\"; do printf \" '%s'\" \"$a\"; done; echo; } >>'" << calls_
      << "' 2>/dev/null\n";
    // Podman gives the runtime no --root, and passes its --runtime-flag
    // options on some calls only (not on the `delete --force` of its
    // cleanup after a container exits), so a root can only be chosen here:
    // the lab's stands in for the runtime's default, and can be checked.
    if (default_root) {
      fs::create_directories(runtime_root());
      w << "case \" $* \" in *\" --root \"*|*\" --root=\"*) ;; *) set -- --root '" << runtime_root()
        << "' \"$@\" ;; esac\n";
    }
    w << "exec '" << runtime << "' \"$@\"\n";
    w.close();
    ::chmod(wrapper_.c_str(), 0755);
  }
  LabBase(const LabBase&) = delete;
  LabBase& operator=(const LabBase&) = delete;

  [[nodiscard]] const std::string& wrapper() const { return wrapper_; }
  [[nodiscard]] std::string runtime_root() const { return dir_.file("runtime-root"); }
  [[nodiscard]] std::string dir() const { return dir_.path().string(); }
  // The runtime's command lines so far (for failure messages).
  [[nodiscard]] std::string calls() const {
    const std::string log = slurp(calls_);
    return log.size() <= 4000 ? log : "..." + log.substr(log.size() - 4000);
  }

  // Processes the lab's containers may leave behind: any husk-oci or husk
  // (keeper, VMM), or anything whose command line names the lab's folder
  // (containerd's shims, conmon), other than `keep` and this program.
  [[nodiscard]] std::vector<std::string> leftovers(int keep) const {
    std::vector<std::string> out;
    const std::string husk_real = fs::canonical(husk_bin()).string();
    for (const Proc& p : processes()) {
      if (p.pid == ::getpid() || p.pid == keep || p.cmdline.empty()) continue;
      if (p.exe == runtime_real_ || p.exe == husk_real || p.cmdline.find(dir()) != std::string::npos) {
        out.push_back(std::to_string(p.pid) + ": " + p.cmdline);
      }
    }
    return out;
  }

 protected:
  TempDir dir_;
  std::string runtime_real_;
  std::string wrapper_;
  std::string calls_;
};

// containerd with its root, state and socket in the lab's folder, the CRI
// plugin off (no CNI, no pause image), the native snapshotter (the test
// host's kernel has no overlay module loaded; the native snapshotter copies
// the two-megabyte image), and the image imported.
class Containerd : public LabBase {
 public:
  static Containerd& get() {
    static Containerd lab;
    return lab;
  }
  ~Containerd() {
    if (daemon_ > 0) {
      ::kill(daemon_, SIGTERM);
      if (!wait_until([&] { return ::waitpid(daemon_, nullptr, WNOHANG) == daemon_; }, 10)) {
        ::kill(daemon_, SIGKILL);
        ::waitpid(daemon_, nullptr, 0);
      }
    }
    // Shims of containers a failed case left running: not past this program.
    for (const Proc& p : processes()) {
      if (p.pid != ::getpid() && p.cmdline.find(dir()) != std::string::npos) ::kill(p.pid, SIGKILL);
    }
  }

  // `ctr -a SOCKET ARGS...`.
  ProcessResult ctr(const std::vector<std::string>& args, const std::string& stdin_data = "",
                    double timeout_s = kClientTimeoutS) const {
    std::vector<std::string> argv{"ctr", "-a", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, timeout_s, stdin_data);
  }

  // `ctr run --rm? --runc-binary WRAPPER --snapshotter native EXTRA... IMAGE ID ARGS...`
  [[nodiscard]] std::vector<std::string> run_args(const std::string& id, const std::vector<std::string>& extra,
                                                  const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"run", "--runc-binary", wrapper_, "--snapshotter", "native"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {kImage, id});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  [[nodiscard]] std::string socket() const { return socket_; }
  [[nodiscard]] std::string log() const {
    const std::string text = slurp(dir_.file("containerd.log"));
    return text.size() <= 3000 ? text : "..." + text.substr(text.size() - 3000);
  }
  [[nodiscard]] int pid() const { return daemon_; }
  // The runtime's --root for the shim's containers (the shim passes
  // /run/containerd/runc/NAMESPACE whatever containerd's --state is).
  [[nodiscard]] static fs::path shim_root() { return "/run/containerd/runc/default"; }

 private:
  Containerd() {
    socket_ = dir_.file("containerd.sock");
    const std::string config = dir_.file("config.toml");
    std::ofstream(config) << "version = 2\nroot = \"" << dir_.file("root") << "\"\nstate = \"" << dir_.file("state")
                          << "\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \""
                          << socket_ << "\"\n";
    const std::string log = dir_.file("containerd.log");
    daemon_ = ::fork();
    if (daemon_ == 0) {
      ::setsid();
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      ::execlp("containerd", "containerd", "--config", config.c_str(), nullptr);
      ::_exit(127);
    }
    if (daemon_ < 0) throw std::runtime_error("fork for containerd failed");
    // Ready when it answers; in the test host that takes about 5 s.
    const bool up = wait_until(
        [&] {
          if (::waitpid(daemon_, nullptr, WNOHANG) == daemon_) {
            daemon_ = -1;
            throw std::runtime_error("containerd exited at start: " + slurp(log));
          }
          return fs::exists(socket_) && ctr({"version"}, "", 30).exit_code == 0;
        },
        90, 300);
    if (!up) throw std::runtime_error("containerd did not answer within 90 s: " + slurp(log));
    const ProcessResult imp = ctr({"image", "import", "--snapshotter", "native", image_archive()});
    if (imp.exit_code != 0) throw std::runtime_error("ctr image import failed: " + imp.err);
  }

  std::string socket_;
  pid_t daemon_ = -1;
};

// Podman with its store, run root and temporary files in the lab's folder:
// the vfs storage driver (no overlay module, no fuse), cgroupfs (no
// systemd), file events (no journald), no network, and the image loaded.
// The runtime's --root for Podman's calls is the lab's (LabBase).
class Podman : public LabBase {
 public:
  static Podman& get() {
    static Podman lab;
    return lab;
  }
  ~Podman() {
    for (const Proc& p : processes()) {
      if (p.pid != ::getpid() && p.cmdline.find(dir()) != std::string::npos) ::kill(p.pid, SIGKILL);
    }
  }

  // `podman GLOBAL... ARGS...` with TMPDIR in the lab (image loads write
  // below $TMPDIR, /var/tmp by default: read-only in the test host).
  ProcessResult podman(const std::vector<std::string>& args, const std::string& stdin_data = "",
                       double timeout_s = kClientTimeoutS) const {
    std::vector<std::string> argv{"env",
                                  "TMPDIR=" + dir_.file("tmp"),
                                  "podman",
                                  "--root",
                                  dir_.file("storage"),
                                  "--runroot",
                                  dir_.file("runroot"),
                                  "--tmpdir",
                                  dir_.file("libpod-tmp"),
                                  "--storage-driver",
                                  "vfs",
                                  "--cgroup-manager",
                                  "cgroupfs",
                                  "--events-backend",
                                  "file",
                                  "--runtime",
                                  wrapper_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, timeout_s, stdin_data);
  }


 private:
  Podman() : LabBase(true) {
    fs::create_directories(dir_.file("tmp"));
    const ProcessResult load = podman({"load", "-q", "-i", image_archive()});
    if (load.exit_code != 0) throw std::runtime_error("podman load failed: " + load.err);
  }
};

}  // namespace husk::test::oci
