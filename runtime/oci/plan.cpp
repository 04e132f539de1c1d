// The container plan: a Spec mapped onto a husk VM and the agent's Exec (plan.h).
#include "runtime/oci/plan.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "runtime/arch/x86_64/layout.h"

namespace husk::oci {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1u << 20;
constexpr uint64_t kRlimInfinity = ~uint64_t{0};  // RLIM_INFINITY as the spec writes it
constexpr uint64_t kDefaultCpuPeriod = 100'000;   // the kernel's CFS period, microseconds
constexpr size_t kMaxHostname = 64;                // HOST_NAME_MAX

void info(std::vector<Note>& notes, std::string text) { notes.push_back(Note{false, std::move(text)}); }
void warn(std::vector<Note>& notes, std::string text) { notes.push_back(Note{true, std::move(text)}); }

// Sizes as people read them: "512 MiB", or bytes when not whole MiB.
std::string size_text(uint64_t bytes) {
  if (bytes % kMiB == 0) return fmt::format("{} MiB", bytes / kMiB);
  return fmt::format("{} bytes", bytes);
}

// A CPU count with at most two decimals: "2", "1.5", "0.25".
std::string cpus_text(uint64_t quota, uint64_t period) {
  uint64_t whole = quota / period;
  // The remainder's share in hundredths, rounded; a double is exact enough
  // for two decimals, and quota * 100 could overflow.
  auto hundredths = static_cast<uint64_t>(std::lround(static_cast<double>(quota % period) * 100.0 /
                                                      static_cast<double>(period)));
  if (hundredths == 100) {
    ++whole;
    hundredths = 0;
  }
  std::string s = fmt::format("{}.{:02}", whole, hundredths);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

void plan_rlimits(const std::vector<Rlimit>& rlimits, agent::proto::Limits& limits, std::vector<Note>& notes) {
  for (const Rlimit& r : rlimits) {
    uint64_t* target = nullptr;
    if (r.type == "RLIMIT_NOFILE") target = &limits.open_files;
    if (r.type == "RLIMIT_FSIZE") target = &limits.file_size;
    if (target == nullptr) {
      warn(notes, fmt::format("process.rlimits {} (soft {}, hard {}): not applied", r.type, r.soft, r.hard));
      continue;
    }
    if (r.hard == kRlimInfinity) {
      info(notes, fmt::format("process.rlimits {}: unlimited: the guest's default applies", r.type));
      continue;
    }
    // 0 means "no limit" to the agent, so a limit of 0 cannot be expressed.
    if (r.hard == 0) {
      warn(notes, fmt::format("process.rlimits {} 0: not applied (husk cannot set a limit of 0)", r.type));
      continue;
    }
    *target = r.hard;
    if (r.soft < r.hard) {
      info(notes, fmt::format("process.rlimits {}: soft {} raised to the hard {} (the guest sets both)", r.type,
                              r.soft, r.hard));
    }
  }
}

// Process fields husk does not apply. Those a VM makes moot are info; the
// rest change what the process sees, so they are warnings.
void plan_moot(const Process& p, std::vector<Note>& notes) {
  if (!p.additional_gids.empty()) {
    std::vector<std::string> gids;
    for (const uint32_t g : p.additional_gids) gids.push_back(std::to_string(g));
    warn(notes, fmt::format("process.user.additionalGids [{}]: not applied: the process has no supplementary groups",
                            join(gids)));
  }
  if (p.umask) {
    warn(notes, fmt::format("process.user.umask {:04o}: not applied: the guest agent's umask is inherited", *p.umask));
  }
  if (p.no_new_privileges) {
    info(notes, "process.noNewPrivileges: not set in the guest: the VM is the boundary");
  }
  for (const std::string& field : p.moot) {
    const bool boundary = field == "capabilities" || field == "apparmorProfile" || field == "selinuxLabel" ||
                          field == "oomScoreAdj";
    if (boundary) {
      info(notes, fmt::format("process.{}: not applied: the VM is the boundary", field));
    } else {
      warn(notes, fmt::format("process.{}: not applied", field));
    }
  }
}

// "io.husk.vm.*" values: a plain decimal in [lo, hi].
Result<uint64_t> annotation_number(const std::string& name, const std::string& value, uint64_t lo, uint64_t hi) {
  uint64_t n = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, n);
  if (value.empty() || ec != std::errc() || ptr != end || n < lo || n > hi) {
    return fail(fmt::format("annotation {}: '{}' is not a number from {} to {}", name,
                            value.substr(0, 40), lo, hi));
  }
  return n;
}

Result<void> plan_shape(const Spec& spec, const PlanDefaults& defaults, ContainerPlan& plan) {
  const Resources& res = spec.resources;
  std::vector<Note>& notes = plan.notes;
  plan.memory_mib = defaults.memory_mib;
  if (res.memory_limit && *res.memory_limit > 0) {
    const auto limit = static_cast<uint64_t>(*res.memory_limit);
    plan.process.limits.memory_bytes = limit;
    plan.memory_mib = std::max(limit / kMiB + (limit % kMiB != 0) + defaults.guest_overhead_mib, kMinVmMemoryMib);
    info(notes, fmt::format("linux.resources.memory.limit {}: the guest cgroup's limit, in a {} MiB VM", size_text(limit),
                            plan.memory_mib));
  }
  const uint32_t host_cpus = std::max<uint32_t>(defaults.host_cpus, 1);
  plan.vcpus = defaults.vcpus;
  if (res.cpu_quota && *res.cpu_quota > 0) {
    const uint64_t period = res.cpu_period.value_or(0) != 0 ? *res.cpu_period : kDefaultCpuPeriod;
    const auto quota = static_cast<uint64_t>(*res.cpu_quota);
    const uint64_t wanted = quota / period + (quota % period != 0);
    plan.vcpus = static_cast<uint32_t>(std::clamp<uint64_t>(wanted, 1, host_cpus));
    info(notes, fmt::format("cpu quota {} CPUs: {} vCPU{}{} (the fraction is not enforced)", cpus_text(quota, period),
                            plan.vcpus, plan.vcpus == 1 ? "" : "s", wanted > host_cpus ? ", this host's CPUs" : ""));
  }
  if (res.cpu_shares) {
    info(notes, fmt::format("linux.resources.cpu.shares {}: not applied: the host schedules the VM's vCPUs",
                            *res.cpu_shares));
  }
  if (!res.cpuset_cpus.empty()) {
    warn(notes, fmt::format("linux.resources.cpu.cpus '{}': not applied: vCPU threads are not pinned", res.cpuset_cpus));
  }
  if (res.pids_limit && *res.pids_limit > 0) {
    plan.process.limits.pids = static_cast<uint32_t>(std::min<int64_t>(*res.pids_limit, UINT32_MAX));
  }
  for (const std::string& field : res.other) {
    if (field == "devices") {
      info(notes, "linux.resources.devices: not applied: the VM has only its own virtual devices");
    } else {
      warn(notes, fmt::format("linux.resources.{}: not applied", field));
    }
  }

  for (const auto& [key, value] : spec.annotations) {
    if (key == kMemoryAnnotation) {
      HUSK_TRY_ASSIGN(plan.memory_mib, annotation_number(key, value, kMinVmMemoryMib, kMaxVmMemoryMib));
      info(notes, fmt::format("annotation {}: a {} MiB VM", key, plan.memory_mib));
      if (plan.process.limits.memory_bytes > plan.memory_mib * kMiB) {
        warn(notes, fmt::format("annotation {}: the VM's {} MiB are less than the memory limit {}", key,
                                plan.memory_mib, size_text(plan.process.limits.memory_bytes)));
      }
    } else if (key == kVcpusAnnotation) {
      HUSK_TRY_ASSIGN(const uint64_t n, annotation_number(key, value, 1, x86_64::kMaxVcpus));
      plan.vcpus = static_cast<uint32_t>(n);
      info(notes, fmt::format("annotation {}: {} vCPU{}", key, n, n == 1 ? "" : "s"));
    } else if (key.rfind("io.husk.", 0) == 0) {
      warn(notes, fmt::format("annotation {}: unknown to husk, ignored", key));
    }
  }
  if (plan.memory_mib > kMaxVmMemoryMib) {
    return fail(fmt::format("linux.resources.memory.limit {}: a {} MiB VM is past husk's bound of {} MiB (set {})",
                            size_text(plan.process.limits.memory_bytes), plan.memory_mib, kMaxVmMemoryMib,
                            kMemoryAnnotation));
  }
  return {};
}

// The mounts every guest has of its own (config-linux.md, "Default Filesystems", and runc's defaults).
struct GuestMount {
  const char* destination;
  const char* type;
  const char* other_type;  // a second accepted type, or nullptr
};
constexpr GuestMount kGuestMounts[] = {
    {"/proc", "proc", nullptr},       {"/sys", "sysfs", nullptr},          {"/dev", "tmpfs", nullptr},
    {"/dev/pts", "devpts", nullptr},  {"/dev/shm", "tmpfs", "bind"},       {"/dev/mqueue", "mqueue", nullptr},
    {"/sys/fs/cgroup", "cgroup", "cgroup2"},
};

bool guest_provides(const std::string& dest, const std::string& type, bool bind) {
  for (const GuestMount& g : kGuestMounts) {
    if (dest != g.destination) continue;
    const bool other = g.other_type != nullptr && (type == g.other_type || (bind && std::strcmp(g.other_type, "bind") == 0));
    if (type == g.type || other) return true;
  }
  return false;
}

bool under(const std::string& path, const char* folder) {
  const size_t n = std::strlen(folder);
  return path.compare(0, n, folder) == 0 && (path.size() == n || path[n] == '/');
}

const char* file_kind(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFSOCK: return "a socket";
    case S_IFIFO: return "a FIFO";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    default: return "a special file";
  }
}

// A bind source folder's regular files together, refused past max_bytes or
// max_entries. Symbolic links inside are copied as links, not followed.
Result<uint64_t> folder_bytes(const std::string& dest, const std::string& source, uint64_t max_bytes,
                              uint32_t max_entries) {
  std::error_code ec;
  fs::recursive_directory_iterator it(source, fs::directory_options::none, ec);
  uint64_t bytes = 0;
  uint32_t entries = 0;
  const fs::recursive_directory_iterator end;
  while (!ec && it != end) {
    if (++entries > max_entries) {
      return fail(fmt::format("mount {}: bind mounts of folders with over {} entries are not supported: husk copies "
                              "binds into the VM",
                              dest, max_entries));
    }
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) return fail_errno(fmt::format("mount {}: {}", dest, it->path().string()));
    if (S_ISREG(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_size);
      if (bytes > max_bytes) {
        return fail(fmt::format("mount {}: bind mounts of folders over {} are not supported: husk copies binds into "
                                "the VM",
                                dest, size_text(max_bytes)));
      }
    } else if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return fail(fmt::format("mount {}: {} is {}: only files, folders and symbolic links can be copied", dest,
                              it->path().string(), file_kind(st.st_mode)));
    }
    it.increment(ec);
  }
  if (ec) return fail(fmt::format("mount {}: cannot read {}: {}", dest, source, ec.message()));
  return bytes;
}

Result<FileCopy> plan_bind(const Mount& m, const std::string& dest, const PlanDefaults& defaults) {
  const uint64_t max_bytes = defaults.max_copy_bytes;
  if (m.source.empty() || m.source.front() != '/') {
    return fail(fmt::format("mount {}: bind source '{}' is not an absolute path", dest, m.source));
  }
  struct stat st {};
  if (::stat(m.source.c_str(), &st) != 0) return fail_errno(fmt::format("mount {}: bind source {}", dest, m.source));
  FileCopy copy{m.source, dest, false, 0};
  if (S_ISREG(st.st_mode)) {
    copy.bytes = static_cast<uint64_t>(st.st_size);
    if (copy.bytes > max_bytes) {
      return fail(fmt::format("mount {}: bind mounts of files over {} are not supported: husk copies binds into the VM",
                              dest, size_text(max_bytes)));
    }
  } else if (S_ISDIR(st.st_mode)) {
    copy.directory = true;
    HUSK_TRY_ASSIGN(copy.bytes, folder_bytes(dest, m.source, max_bytes, defaults.max_copy_entries));
  } else {
    return fail(fmt::format("mount {}: bind source {} is {}: only files and folders can be copied into the VM", dest,
                            m.source, file_kind(st.st_mode)));
  }
  return copy;
}

Result<void> plan_mounts(const Spec& spec, const PlanDefaults& defaults, ContainerPlan& plan) {
  std::vector<std::string> provided;
  for (const Mount& m : spec.mounts) {
    if (m.destination.front() != '/') {
      return fail(fmt::format("mount {}: the destination is not an absolute path", m.destination));
    }
    std::string dest = fs::path(m.destination).lexically_normal().string();
    if (dest.size() > 1 && dest.back() == '/') dest.pop_back();
    const bool bind = m.type == "bind" || std::any_of(m.options.begin(), m.options.end(), [](const std::string& o) {
                        return o == "bind" || o == "rbind";
                      });
    if (guest_provides(dest, m.type, bind)) {
      provided.push_back(dest);
      continue;
    }
    if (bind) {
      // The guest's /proc and /sys are the kernel's own; /dev takes files
      // (Kubernetes binds /dev/termination-log), device nodes are refused below.
      if (under(dest, "/proc") || under(dest, "/sys")) {
        return fail(fmt::format("mount {}: binds into /proc and /sys are not supported: the guest's are its own", dest));
      }
      HUSK_TRY_ASSIGN(FileCopy copy, plan_bind(m, dest, defaults));
      const bool ro = std::find(m.options.begin(), m.options.end(), "ro") != m.options.end();
      info(plan.notes, fmt::format("mount {}: {} {} copied at start; later changes are not shared{}", dest,
                                   copy.directory ? "folder" : "file", copy.source,
                                   ro ? "; read-only is not enforced" : ""));
      plan.copies.push_back(std::move(copy));
    } else if (m.type == "tmpfs") {
      warn(plan.notes, fmt::format("mount {}: tmpfs not mounted: the folder is part of the writable root (its "
                                   "writes go to guest RAM either way)",
                                   dest));
    } else if (m.type.empty()) {
      return fail(fmt::format("mount {}: no type, and not a bind mount", dest));
    } else {
      return fail(fmt::format("mount {}: type {} is not supported: husk copies only bind mounts into the VM", dest,
                              m.type));
    }
  }
  if (!provided.empty()) {
    info(plan.notes, fmt::format("mounts {}: the guest's own (their options do not apply)", join(provided)));
  }
  return {};
}

// A reason per linux.* field husk does not map.
const char* linux_reason(const std::string& field) {
  if (field == "seccomp") return "not applied: the VM is the boundary";
  if (field == "maskedPaths" || field == "readonlyPaths") return "not applied: the guest's /proc and /sys show only the VM";
  if (field == "devices") return "not created: the VM has only its own virtual devices";
  if (field == "uidMappings" || field == "gidMappings") return "not applied: IDs in the VM are as given";
  return "not applied";
}

void plan_isolation(const Spec& spec, ContainerPlan& plan) {
  std::vector<std::string> boundary;
  const bool mapped = std::any_of(spec.linux_other.begin(), spec.linux_other.end(), [](const std::string& f) {
    return f == "uidMappings" || f == "gidMappings";
  });
  for (const Namespace& ns : spec.namespaces) {
    if (!ns.path.empty()) {
      const char* why = ns.type == "network" ? "the VM has loopback only" : "the container has its own in its VM";
      warn(plan.notes, fmt::format("namespace {} at {}: not joined: {}", ns.type, ns.path, why));
    } else if (ns.type == "user" && mapped) {
      warn(plan.notes, "namespace user: its uidMappings and gidMappings are not applied: IDs in the VM are as given");
    } else {
      boundary.push_back(ns.type);
    }
  }
  if (!boundary.empty()) info(plan.notes, fmt::format("namespaces {}: the VM is the boundary", join(boundary)));
  for (const std::string& hook : spec.hooks) warn(plan.notes, fmt::format("hooks.{}: not run", hook));
  for (const std::string& field : spec.linux_other) {
    warn(plan.notes, fmt::format("linux.{}: {}", field, linux_reason(field)));
  }
  if (!spec.cgroups_path.empty()) {
    info(plan.notes, fmt::format("linux.cgroupsPath {}: the limits apply inside the VM", spec.cgroups_path));
  }
}

// Notes and errors quote the caller's strings (mount destinations, paths,
// annotation keys): each is made one printable line before it is returned.
// A note may be long (a folder's path, a list of mounts), so it is not cut.
void make_printable(std::vector<Note>& notes, size_t from) {
  for (size_t i = from; i < notes.size(); ++i) notes[i].text = printable(notes[i].text, SIZE_MAX);
}

Unexpected printable_error(Error e) {
  e.message = printable(e.message, SIZE_MAX);
  return Unexpected(std::move(e));
}

Result<agent::ExecRequest> map_process(const Process& process, std::vector<Note>& notes) {
  if (process.args.empty()) return fail("process.args: empty: nothing to run");
  agent::ExecRequest req;
  req.argv = process.args;
  req.env = process.env;
  req.cwd = process.cwd;
  req.uid = process.uid;
  req.gid = process.gid;
  req.pty = process.terminal;
  if (process.console_rows != 0) req.rows = process.console_rows;
  if (process.console_cols != 0) req.cols = process.console_cols;
  plan_rlimits(process.rlimits, req.limits, notes);
  plan_moot(process, notes);
  return req;
}

Result<ContainerPlan> plan_spec(const Spec& spec, const PlanDefaults& defaults) {
  if (!spec.process) return fail("process: missing: create needs a process to run");
  ContainerPlan plan;
  HUSK_TRY_ASSIGN(plan.process, map_process(*spec.process, plan.notes));

  if (spec.root_path.empty() || spec.root_path.front() != '/') {
    return fail(fmt::format("root.path '{}': not absolute (load_bundle resolves it)", spec.root_path));
  }
  struct stat st {};
  if (::stat(spec.root_path.c_str(), &st) != 0) return fail_errno(fmt::format("root.path {}", spec.root_path));
  if (!S_ISDIR(st.st_mode)) return fail(fmt::format("root.path {}: not a folder", spec.root_path));
  plan.rootfs = spec.root_path;
  plan.root_readonly = spec.root_readonly;
  if (spec.root_readonly) info(plan.notes, "root.readonly: kept, though writes go to guest RAM either way");

  if (spec.hostname.size() > kMaxHostname) {
    return fail(fmt::format("hostname: {} bytes; at most {} fit", spec.hostname.size(), kMaxHostname));
  }
  plan.hostname = spec.hostname;
  if (!spec.domainname.empty()) warn(plan.notes, fmt::format("domainname {}: not set", spec.domainname));

  HUSK_TRY(plan_shape(spec, defaults, plan));
  HUSK_TRY(plan_mounts(spec, defaults, plan));
  plan_isolation(spec, plan);
  return plan;
}

}  // namespace

Result<agent::ExecRequest> plan_exec(const Process& process, std::vector<Note>& notes) {
  const size_t first = notes.size();
  auto req = map_process(process, notes);
  if (!req) return printable_error(req.error());
  make_printable(notes, first);
  return req;
}

Result<ContainerPlan> plan_container(const Spec& spec, const PlanDefaults& defaults) {
  auto plan = plan_spec(spec, defaults);
  if (!plan) return printable_error(plan.error());
  make_printable(plan->notes, 0);
  return plan;
}

}  // namespace husk::oci
