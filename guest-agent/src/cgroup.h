// One job's cgroup v2 folder (<root>/job-<serial>): its limits, the kill
// switch for the whole process tree, and the counters read when it ends.
// Follows Documentation/admin-guide/cgroup-v2.rst (kernel 6.1): cgroup.kill
// (5.14+), memory.peak (5.19+), memory.oom.group, memory.events oom_kill,
// pids.events max, cpu.stat usage_usec/user_usec/system_usec.
#pragma once

#include <cstdint>
#include <string>

#include "guest-agent/protocol/protocol.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

struct CgroupStats {
  uint64_t usage_us = 0;
  uint64_t user_us = 0;
  uint64_t system_us = 0;
  uint64_t peak_memory = 0;
  uint64_t oom_kills = 0;
  uint64_t pids_max_hits = 0;
};

class Cgroup {
 public:
  Cgroup() = default;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  Cgroup(Cgroup&&) = default;
  Cgroup& operator=(Cgroup&&) = default;

  // Creates the folder and writes the limits; 0 or errno (the folder is
  // removed again on failure).
  int create(const std::string& root, uint64_t serial, const agent::proto::Limits& limits);

  [[nodiscard]] bool valid() const { return !path_.empty(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  // cgroup.procs, opened before fork so the child joins with one write.
  [[nodiscard]] int procs_fd() const { return procs_.get(); }

  // SIGKILLs every process in the cgroup, including ones that left the
  // job's session or process group.
  void kill() const;
  [[nodiscard]] uint64_t cpu_usage_us() const;
  [[nodiscard]] CgroupStats stats() const;
  // rmdir; false (EBUSY) while dying processes are still in it.
  bool remove();

 private:
  std::string path_;
  UniqueFd procs_;
};

}  // namespace husk::guest
