// The harness of the jail tests (tests/kvm/jail/*_test.cpp): a jail folder
// like the one husk makes (a PrivateDir) with a bound file and /dev/kvm, a
// pipe through which the jailed process reports what it saw as "key=value"
// lines (no Catch2 in child processes: the parent asserts), and the host
// side's views of mounts and cgroups.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/common/private_dir.h"
#include "runtime/common/unique_fd.h"
#include "runtime/jail/cgroup.h"
#include "runtime/jail/jail.h"
#include "runtime/jail/namespaces.h"
#include "tests/support/children.h"
#include "tests/support/temp_dir.h"

namespace husk::test {

inline constexpr const char* kBoundText = "only this file of the host";

// "ESRCH" for ESRCH, "0" for 0.
inline std::string errno_name(int err) {
  if (err == 0) return "0";
  const char* name = ::strerrorname_np(err);
  return name != nullptr ? name : std::to_string(err);
}

// A pipe: the child writes "key=value\n" lines, the parent reads them.
struct ReportPipe {
  ReportPipe() {
    int fds[2] = {-1, -1};
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_end.reset(fds[0]);
      write_end.reset(fds[1]);
    }
  }
  UniqueFd read_end;
  UniqueFd write_end;
};

// The child's side: one line per put(), written at once (no buffering, so
// what was said before a crash arrives).
class Reporter {
 public:
  explicit Reporter(int fd) : fd_(fd) {}
  void put(std::string_view key, const std::string& value) const {
    std::string line = std::string(key) + "=" + value;
    for (char& c : line) {
      if (c == '\n') c = ' ';
    }
    line += '\n';
    [[maybe_unused]] const ssize_t n = ::write(fd_, line.data(), line.size());
  }
  void put(std::string_view key, long long value) const { put(key, std::to_string(value)); }
  // errno of a call that returned `result`, "0" if it succeeded.
  void put_errno(std::string_view key, long result) const { put(key, result < 0 ? errno_name(errno) : "0"); }

 private:
  int fd_;
};

// The parent's side: every line until EOF or the deadline.
struct Report {
  std::map<std::string, std::string> values;
  bool timed_out = false;
  std::string pending;  // a line not yet complete
  [[nodiscard]] std::string get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? "<missing>" : it->second;
  }
};

// Reads lines into `report` until EOF (every writer gone), until
// `until_key` has been seen (if not empty), or until the deadline.
inline void read_report_into(Report& report, int fd, double seconds, const std::string& until_key = "") {
  std::string& pending = report.pending;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      report.timed_out = true;
      return;
    }
    struct pollfd p {fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl = 0;
    bool seen = false;
    while ((nl = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      const size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      report.values[line.substr(0, eq)] = line.substr(eq + 1);
      seen = seen || line.substr(0, eq) == until_key;
    }
    if (seen) return;
  }
}

inline Report read_report(int fd, double seconds, const std::string& until_key = "") {
  Report report;
  read_report_into(report, fd, seconds, until_key);
  return report;
}

// waitpid with a deadline; the status, or -1 when the process did not end.
// ECHILD counts as "not yet": an orphan becomes this (subreaper) process's
// child only once its parent is gone.
inline int wait_for_exit(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR && errno != ECHILD) return -1;
    if (std::chrono::steady_clock::now() > deadline) return -1;
    ::usleep(2000);
  }
}

inline std::string describe_status(int status) {
  if (status == -1) return "still running";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + ::sigabbrev_np(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Every entry under `dir`, relative ("dev", "dev/kvm"), not following links.
inline std::set<std::string> tree(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.insert(std::filesystem::relative(it->path(), dir).string());
  }
  return out;
}

// The mountinfo lines that mention `path`.
inline std::string mounts_mentioning(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.find(path) != std::string::npos) out += line + "\n";
  }
  return out;
}

// The cgroup v2 path of a process as the host sees it ("/husk/123-0"), or "".
inline std::string cgroup_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}


// A jail folder as husk makes it, and a host file bound into it at
// /bound.txt (read-only) next to /dev/kvm.
struct JailFolder {
  JailFolder() {
    auto made = PrivateDir::create("husk-jail-test");
    if (made) dir.emplace(std::move(*made));
    bound_source = sources.file("bound.txt");
    std::ofstream(bound_source) << kBoundText;
    ::chmod(sources.path().c_str(), 0755);
    spec.root = dir ? dir->path() : "/nonexistent";
    spec.binds = {{bound_source, "/bound.txt", true}, {"/dev/kvm", "/dev/kvm", false}};
  }
  TempDir sources;
  std::optional<PrivateDir> dir;
  std::string bound_source;
  jail::JailSpec spec;
};

// Whether this host has what the jail's cgroups need, and why not.
struct CgroupVariant {
  bool available = false;
  std::string problem;  // cgroup::problems' first item when not available
};

inline CgroupVariant cgroup_variant(bool unprivileged = false) {
  const auto problems = jail::cgroup::problems(unprivileged);
  return problems.empty() ? CgroupVariant{true, ""} : CgroupVariant{false, problems.front()};
}

}  // namespace husk::test
