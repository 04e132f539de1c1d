#include "runtime/snapshot/snapshot_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/sha256.h"
#include "runtime/common/unique_fd.h"
#include "runtime/kvm/cpuid_cache.h"
#include "runtime/kvm/kvm.h"
#include "runtime/snapshot/snapshot_file.h"

namespace husk::snapshot {

namespace fs = std::filesystem;
using agent::RestoreSource;

namespace {

constexpr const char* kStateFile = "state";
constexpr const char* kMemoryFile = "memory";
// From the agent's answer to the written files: a pause and two writes.
constexpr auto kSnapshotTimeout = std::chrono::seconds(60);

// A file as a snapshot depends on it: where it is and which version of it
// (size, change time, inode). Rebuilding a kernel or image gives a new one
// without hashing megabytes on every start.
Result<std::string> file_identity(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) < 0) return fail_errno("stat " + path);
  return fmt::format("{} size={} mtime={}.{:09} ino={}", fs::absolute(path).lexically_normal().string(), st.st_size,
                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ino);
}

const char* mode_name(vmm::DiskMode mode) {
  switch (mode) {
    case vmm::DiskMode::kReadOnly: return "ro";
    case vmm::DiskMode::kCopyOnWrite: return "cow";
    case vmm::DiskMode::kPersistent: return "rw";
  }
  return "?";
}

Result<UniqueFd> create_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("create " + path);
  return fd;
}

RestoreSource source_in(const std::string& dir) {
  return RestoreSource{dir + "/" + kStateFile, dir + "/" + kMemoryFile};
}

// The snapshot in `dir` is usable for `description`: whole (its checksum
// and every field check out) and made by this build for this configuration.
Result<void> usable(const std::string& dir, const std::string& description) {
  const std::string path = dir + "/" + kStateFile;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  HUSK_TRY_ASSIGN(StateFile file, read_state_file(fd.get()));
  return check_compatible(file.header, build_id(), description);
}

}  // namespace

std::string default_cache_dir() {
  if (const char* dir = std::getenv("HUSK_SNAPSHOT_CACHE"); dir != nullptr && *dir != '\0') return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/husk/snapshots";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && *home != '\0' ? home : "/tmp") + "/.cache/husk/snapshots";
}

Result<std::string> describe_config(const vmm::VmConfig& config) {
  if (config.disks.end() != std::find_if(config.disks.begin(), config.disks.end(), [](const vmm::DiskConfig& d) {
        return d.mode == vmm::DiskMode::kPersistent;
      })) {
    // Its file changes with every VM: a snapshot's page cache would lie.
    return fail("a VM with a persistent (rw) disk cannot start from a snapshot; use a cow or ro disk");
  }
  HUSK_TRY_ASSIGN(std::vector<kvm_cpuid_entry2> cpuid, kvm::host_cpuid(config.kvm_path, config.cpuid_cache_path));
  std::string d;
  d += fmt::format("husk_build={}\n", build_id());
  d += fmt::format("host_cpuid={}\n",
                   sha256_hex(std::string_view(reinterpret_cast<const char*>(cpuid.data()),
                                               cpuid.size() * sizeof(kvm_cpuid_entry2))));
  d += fmt::format("vcpus={}\nmemory_mib={}\n", config.vcpus, config.memory_mib);
  HUSK_TRY_ASSIGN(std::string kernel, file_identity(config.kernel_path));
  d += "kernel=" + kernel + "\n";
  if (!config.initrd_path.empty()) {
    HUSK_TRY_ASSIGN(std::string initrd, file_identity(config.initrd_path));
    d += "initrd=" + initrd + "\n";
  }
  d += "cmdline=" + config.cmdline + "\n";
  for (size_t i = 0; i < config.disks.size(); ++i) {
    HUSK_TRY_ASSIGN(std::string disk, file_identity(config.disks[i].path));
    d += fmt::format("disk{}={} {}\n", i, mode_name(config.disks[i].mode), disk);
  }
  d += fmt::format("rng={}\n", config.rng ? 1 : 0);
  return d;
}

Result<void> create_snapshot(const vmm::VmConfig& config, const std::string& dir,
                             const agent::SessionOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(fmt::format("create the snapshot folder {}: {}", dir, ec.message()));
  const RestoreSource files = source_in(dir);
  HUSK_TRY_ASSIGN(UniqueFd state, create_file(files.state_path));
  HUSK_TRY_ASSIGN(UniqueFd memory, create_file(files.memory_path));
  vmm::VmConfig vm = config;
  HUSK_TRY_ASSIGN(vm.snapshot_description, describe_config(config));
  vm.save_to = vmm::SnapshotFds{state.get(), memory.get()};
  agent::SessionOptions session_options = options;
  session_options.restore.reset();
  // The caller goes on with files and forks after this VM.
  session_options.confine_caller = false;
  HUSK_TRY_ASSIGN(auto session, agent::VmSession::start(std::move(vm), session_options));
  auto saved = session->vmm().snapshot(kSnapshotTimeout);
  session->kill(saved ? "snapshot made" : "snapshot failed");
  if (!saved) return wrap("the snapshot", saved.error());
  spdlog::info("snapshot {}: {}", dir, *saved);
  return {};
}

Result<RestoreSource> use_snapshot(const vmm::VmConfig& config, const std::string& dir) {
  HUSK_TRY_ASSIGN(const std::string description, describe_config(config));
  if (auto ok = usable(dir, description); !ok) return wrap("snapshot " + dir, ok.error());
  return source_in(dir);
}

Result<RestoreSource> ensure_snapshot(const vmm::VmConfig& config, const std::string& cache_dir,
                                      const agent::SessionOptions& options) {
  HUSK_TRY_ASSIGN(const std::string description, describe_config(config));
  const std::string cache = cache_dir.empty() ? default_cache_dir() : cache_dir;
  const std::string dir = cache + "/" + sha256_hex(description).substr(0, 32);
  if (usable(dir, description)) return source_in(dir);

  std::error_code ec;
  const bool existed = fs::exists(dir, ec);
  fs::create_directories(cache, ec);
  if (ec) return fail(fmt::format("create the snapshot cache {}: {}", cache, ec.message()));
  // One husk makes it; the others wait for it here and then use it.
  const std::string lock_path = dir + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) return fail_errno("open the snapshot cache's lock " + lock_path);
  while (::flock(lock.get(), LOCK_EX) < 0) {
    if (errno != EINTR) return fail_errno("lock " + lock_path);
  }
  auto why = usable(dir, description);
  if (why) return source_in(dir);
  // Another build's or a broken one: made again.
  if (existed) spdlog::warn("snapshot {} is unusable ({}): made again", dir, why.error().message);
  fs::remove_all(dir, ec);
  // Temporary folders of this entry are made only under its lock: any
  // there now is a killed husk's.
  const std::string stem = fs::path(dir).filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(cache, ec)) {
    if (e.path().filename().string().rfind(stem, 0) == 0) fs::remove_all(e.path(), ec);
  }
  const std::string temporary = fmt::format("{}.tmp-{}", dir, ::getpid());
  if (auto made = create_snapshot(config, temporary, options); !made) {
    fs::remove_all(temporary, ec);
    return Unexpected(made.error());
  }
  fs::rename(temporary, dir, ec);
  if (ec) {
    fs::remove_all(temporary, ec);
    return fail(fmt::format("move the snapshot into {}: {}", dir, ec.message()));
  }
  return source_in(dir);
}

}  // namespace husk::snapshot
