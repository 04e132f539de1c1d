#include "guest-agent/src/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "guest-agent/src/sys.h"

namespace husk::guest {

namespace {

// The most a job may use, whatever its limit says: the guest's RAM less a
// reserve for the kernel and the agent (an eighth, at least 32 MiB); 0 if
// unknown. Files a job writes to tmpfs (/, /tmp, /dev/shm, /run) are its
// memory too, so a job that fills them meets this limit (an OOM kill, ML)
// instead of leaving the guest kernel nothing to free (a panic).
uint64_t guest_memory_for_jobs() {
  std::string text;
  if (read_text("/proc/meminfo", text) != 0) return 0;
  const uint64_t total = keyed_value(text, "MemTotal:") * 1024;
  const uint64_t reserve = std::max<uint64_t>(uint64_t{32} << 20, total / 8);
  return total > 2 * reserve ? total - reserve : 0;
}

}  // namespace

int Cgroup::create(const std::string& root, uint64_t serial, const agent::proto::Limits& limits) {
  const std::string path = root + "/job-" + std::to_string(serial);
  if (::mkdir(path.c_str(), 0755) != 0) return errno;
  path_ = path;
  int err = 0;
  uint64_t memory_max = guest_memory_for_jobs();
  if (limits.memory_bytes != 0 && (memory_max == 0 || limits.memory_bytes < memory_max)) {
    memory_max = limits.memory_bytes;
  }
  if (memory_max != 0) {
    err = write_text(path + "/memory.max", std::to_string(memory_max));
    // No swap in the guest normally; where there is, it must not hide the limit.
    if (err == 0) (void)write_text(path + "/memory.swap.max", "0");
  }
  // An OOM kill takes the whole job down together, as a verdict expects.
  if (err == 0) (void)write_text(path + "/memory.oom.group", "1");
  if (err == 0 && limits.pids != 0) {
    err = write_text(path + "/pids.max", std::to_string(limits.pids));
  }
  if (err == 0) {
    procs_.reset(::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs_) err = errno;
  }
  if (err != 0) {
    procs_.reset();
    ::rmdir(path.c_str());
    path_.clear();
  }
  return err;
}

void Cgroup::kill() const {
  if (valid()) (void)write_text(path_ + "/cgroup.kill", "1");
}

uint64_t Cgroup::cpu_usage_us() const {
  std::string text;
  if (!valid() || read_text(path_ + "/cpu.stat", text) != 0) return 0;
  return keyed_value(text, "usage_usec");
}

CgroupStats Cgroup::stats() const {
  CgroupStats s;
  if (!valid()) return s;
  std::string text;
  if (read_text(path_ + "/cpu.stat", text) == 0) {
    s.usage_us = keyed_value(text, "usage_usec");
    s.user_us = keyed_value(text, "user_usec");
    s.system_us = keyed_value(text, "system_usec");
  }
  if (read_text(path_ + "/memory.peak", text) == 0) s.peak_memory = std::strtoull(text.c_str(), nullptr, 10);
  if (read_text(path_ + "/memory.events", text) == 0) s.oom_kills = keyed_value(text, "oom_kill");
  if (read_text(path_ + "/pids.events", text) == 0) s.pids_max_hits = keyed_value(text, "max");
  return s;
}

bool Cgroup::remove() {
  if (!valid()) return true;
  procs_.reset();
  if (::rmdir(path_.c_str()) != 0 && errno != ENOENT) return false;
  path_.clear();
  return true;
}

}  // namespace husk::guest
