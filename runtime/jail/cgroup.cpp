// The jail's cgroups (cgroup.h): the base folder with the controllers
// handed down, one `<pid>-<n>` cgroup per jail with its limits, joining it,
// removing it after the jail, and sweeping the ones of dead husk processes.
#include "runtime/jail/cgroup.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/jail/sys_files.h"

namespace husk::jail::cgroup {

namespace {

// How long remove() waits for a jail's last processes to leave: a process
// killed by its parent-death signal may still be exiting when its parent
// has been reaped.
constexpr auto kRemoveGrace = std::chrono::milliseconds(300);
constexpr auto kRemoveGiveUp = std::chrono::seconds(2);
constexpr auto kRetryPause = std::chrono::milliseconds(5);

std::atomic<unsigned> next_number{0};
std::mutex registry_mutex;
std::map<pid_t, std::string>& registry() {
  static auto* r = new std::map<pid_t, std::string>();  // never destroyed: used until exit
  return *r;
}

// Writes "+memory +cpu +pids" (those not yet enabled) to `dir`'s
// cgroup.subtree_control, so that its children get the controllers.
Result<void> hand_down(const std::string& dir) {
  const std::string file = dir + "/cgroup.subtree_control";
  HUSK_TRY_ASSIGN(const std::string enabled, read_small_file(file));
  std::string add;
  for (const auto c : kControllers) {
    if (!has_word(enabled, std::string(c))) add += (add.empty() ? "+" : " +") + std::string(c);
  }
  if (add.empty()) return {};
  return write_file(file, add);
}

Result<void> make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("mkdir " + dir);
  return {};
}

// The unprivileged base: husk leaves it for its leaf so that the base holds
// no process and can enable controllers for its children.
Result<void> prepare_delegated(const std::string& b) {
  auto enabled = read_small_file(b + "/cgroup.subtree_control");
  if (!enabled) return Unexpected(enabled.error());
  bool all = true;
  for (const auto c : kControllers) all = all && has_word(*enabled, std::string(c));
  if (all) return {};
  const std::string leaf = b + "/" + kSelfLeaf;
  HUSK_TRY(make_dir(leaf));
  HUSK_TRY(write_file(leaf + "/cgroup.procs", "0"));
  return hand_down(b);
}

Result<void> set_limits(const std::string& path, const CgroupLimits& limits) {
  const auto or_max = [](uint64_t v) { return v == 0 ? std::string("max") : std::to_string(v); };
  HUSK_TRY(write_file(path + "/memory.max", or_max(limits.memory_max_bytes)));
  // Without swap accounting (swapaccount=0) the file does not exist and
  // there is no swap to limit for this cgroup either.
  if (::access((path + "/memory.swap.max").c_str(), F_OK) == 0) {
    HUSK_TRY(write_file(path + "/memory.swap.max", "0"));
  }
  HUSK_TRY(write_file(path + "/pids.max", or_max(limits.pids_max)));
  const std::string quota = limits.cpu_max_percent == 0
                                ? std::string("max")
                                : std::to_string(uint64_t{limits.cpu_max_percent} * kCpuPeriodUs / 100);
  HUSK_TRY(write_file(path + "/cpu.max", fmt::format("{} {}", quota, kCpuPeriodUs)));
  return {};
}

bool rmdir_now(const std::string& path, int& err) {
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
  err = errno;
  return false;
}

// The pids in a cgroup.procs text; a 0 stands for a process outside our
// PID namespace.
std::vector<pid_t> pids_in(const std::string& path) {
  std::vector<pid_t> out;
  auto text = read_small_file(path + "/cgroup.procs");
  if (!text) return out;
  std::istringstream in(*text);
  for (pid_t p = 0; in >> p;) out.push_back(p);
  return out;
}

}  // namespace

Result<std::string> create(const CgroupLimits& limits, bool unprivileged) {
  HUSK_TRY_ASSIGN(const std::string b, base(unprivileged));
  if (unprivileged) {
    HUSK_TRY(prepare_delegated(b));
  } else {
    HUSK_TRY(hand_down(kMount));
    HUSK_TRY(make_dir(b));
    HUSK_TRY(hand_down(b));
  }
  // A folder of this name may be left from a dead process that had our pid
  // (the sweep leaves it while the pid is ours): take the next number.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::string path = fmt::format("{}/{}-{}", b, ::getpid(), next_number.fetch_add(1));
    if (::mkdir(path.c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;
      return fail_errno("mkdir " + path);
    }
    if (auto set = set_limits(path, limits); !set) {
      ::rmdir(path.c_str());
      return Unexpected(set.error());
    }
    return path;
  }
  return fail(fmt::format("cannot find a free cgroup name under {} for pid {}", b, ::getpid()));
}

Result<void> join(const std::string& path) { return write_file(path + "/cgroup.procs", "0"); }

bool remove(const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  bool killed = false;
  int err = 0;
  while (!rmdir_now(path, err)) {
    if (err != EBUSY) {
      spdlog::debug("jail cgroup: rmdir {}: {}", path, std::strerror(err));
      return false;
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited > kRemoveGiveUp) {
      spdlog::debug("jail cgroup: {} still busy after {} ms", path,
                    std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
      return false;
    }
    if (!killed && waited > kRemoveGrace) {
      // The jail is over: anything still in its cgroup is a leftover.
      killed = true;
      if (auto k = write_file(path + "/cgroup.kill", "1"); !k) {
        spdlog::debug("jail cgroup: {}", k.error().message);
      }
    }
    std::this_thread::sleep_for(kRetryPause);
  }
  return true;
}

void remember(pid_t pid, std::string path) {
  std::lock_guard lock(registry_mutex);
  registry()[pid] = std::move(path);
}

std::optional<std::string> forget(pid_t pid) {
  std::lock_guard lock(registry_mutex);
  auto it = registry().find(pid);
  if (it == registry().end()) return std::nullopt;
  std::string path = std::move(it->second);
  registry().erase(it);
  return path;
}

int sweep(bool unprivileged) {
  auto b = base(unprivileged);
  if (!b) {
    spdlog::debug("jail cgroup sweep: {}", b.error().message);
    return 0;
  }
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::opendir(b->c_str()));
  if (!dir) {
    if (errno != ENOENT) spdlog::debug("jail cgroup sweep: open {}: {}", *b, std::strerror(errno));
    return 0;
  }
  std::vector<std::pair<std::string, pid_t>> stale;
  while (const dirent* entry = ::readdir(dir.get())) {
    // "<pid>-<n>", both decimal.
    const std::string name = entry->d_name;
    const size_t dash = name.find('-');
    if (dash == 0 || dash == std::string::npos || dash + 1 == name.size() || dash > 10) continue;
    if (name.find_first_not_of("0123456789", dash + 1) != std::string::npos) continue;
    if (name.find_first_not_of("0123456789") != dash) continue;
    const long pid = std::stol(name.substr(0, dash));
    if (pid <= 0 || pid > INT32_MAX || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    stale.emplace_back(*b + "/" + name, static_cast<pid_t>(pid));
  }
  int removed = 0;
  for (const auto& [path, owner] : stale) {
    // Processes outside our PID namespace show as 0: they are not of a
    // husk we can see, so they are not ours to kill.
    const auto pids = pids_in(path);
    bool foreign = false;
    for (const pid_t p : pids) foreign = foreign || p == 0;
    if (foreign) {
      spdlog::debug("jail cgroup sweep: {} holds processes outside this PID namespace; left", path);
      continue;
    }
    if (remove(path)) {
      ++removed;
      spdlog::debug("jail cgroup sweep: removed {} (husk {} is gone{})", path, owner,
                    pids.empty() ? "" : ", its processes killed");
    }
  }
  return removed;
}

}  // namespace husk::jail::cgroup
