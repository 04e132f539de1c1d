// What this process uses right now, read from /proc/self: open fds,
// threads, resident memory, and per thread its CPU time, state and what it
// is doing. The hostile-guest harness samples these around a VM's run.
#pragma once

#include <dirent.h>
#include <time.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace husk::test::proc {

inline double clock_seconds(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline int count_entries(const char* dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

// Open fds (the directory stream's own fd counts every time, so counts
// compare).
inline int count_fds() { return count_entries("/proc/self/fd"); }
inline int count_threads() { return count_entries("/proc/self/task"); }

inline std::vector<int> thread_ids() {
  std::vector<int> tids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    tids.push_back(std::stoi(e.path().filename().string()));
  }
  return tids;
}

inline int64_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// A thread's CPU time through its per-thread CPU clock (Linux encodes the
// tid in the clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
inline double thread_cpu_seconds(int tid) {
  return clock_seconds(static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6));
}

// What a VM thread is: its name when it has its own (KVM's helper tasks
// do), else the system call it sleeps in.
inline std::string thread_role(int tid) {
  std::string comm;
  std::string own;
  std::getline(std::ifstream(fmt::format("/proc/self/task/{}/comm", tid)), comm);
  std::getline(std::ifstream("/proc/self/comm"), own);
  if (!comm.empty() && comm != own) return comm;
  std::ifstream in(fmt::format("/proc/self/task/{}/syscall", tid));
  std::string first;
  in >> first;
  if (first == "16") return "vcpu";                                            // ioctl(KVM_RUN)
  if (first == "232" || first == "281" || first == "441") return "event-loop";  // epoll_wait
  if (first == "7" || first == "271") return "control";                        // poll
  if (first == "202") return "waiting";                                        // futex
  if (first == "running") return "running";
  return first.empty() ? "unknown" : "syscall " + first;
}

// Whether a thread is running or waiting for a CPU ('R' in its stat).
inline bool thread_runnable(int tid) {
  std::ifstream in(fmt::format("/proc/self/task/{}/stat", tid));
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'R';
}

}  // namespace husk::test::proc
