// What the host offers the jail's cgroups (cgroup.h): where cgroup v2 is
// mounted, which controllers it has, and, for an unprivileged husk, whether
// its own cgroup is delegated to it. Only reads; the messages name what is
// missing and what to do about it.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "runtime/jail/cgroup.h"
#include "runtime/jail/sys_files.h"

namespace husk::jail::cgroup {

namespace {

constexpr const char* kDelegateHint =
    "start husk in a cgroup delegated to it, e.g. `systemd-run --user --scope -p Delegate=yes husk ...`";

// "memory, cpu and pids" (the ones of kControllers that `available` lacks).
std::string missing_controllers(const std::string& available) {
  std::vector<std::string_view> missing;
  for (const auto c : kControllers) {
    if (!has_word(available, std::string(c))) missing.push_back(c);
  }
  std::string out;
  for (size_t i = 0; i < missing.size(); ++i) {
    if (i > 0) out += i + 1 == missing.size() ? " and " : ", ";
    out += missing[i];
  }
  return out;
}

// Mount points of the filesystems of type `fstype`, from mountinfo.
std::vector<std::string> mounts_of_type(const std::string& fstype) {
  std::vector<std::string> out;
  auto text = read_small_file("/proc/self/mountinfo");
  if (!text) return out;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream head(line.substr(0, sep));
    std::istringstream tail(line.substr(sep + 3));
    std::string id, parent, dev, root, mount_point, type;
    head >> id >> parent >> dev >> root >> mount_point;
    tail >> type;
    if (type == fstype) out.push_back(mount_point);
  }
  return out;
}

bool is_cgroup2(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

bool writable(const std::string& path) {
  return ::faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0;
}

// Why /sys/fs/cgroup is not a usable cgroup v2 mount; empty when it is.
std::string mount_problem() {
  const std::string root = kMount;
  if (!is_cgroup2(root)) {
    const bool v1 = !mounts_of_type("cgroup").empty();
    std::string what = v1 ? root + " is cgroup v1" : root + " is not a cgroup v2 mount";
    std::string where;
    for (const auto& m : mounts_of_type("cgroup2")) {
      auto controllers = read_small_file(m + "/cgroup.controllers");
      const std::string lacking = missing_controllers(controllers ? *controllers : "");
      where = lacking.empty() ? fmt::format("cgroup2 is mounted at {}, not at {}", m, root)
                              : fmt::format("cgroup2 is mounted at {} without the {} controller{}", m,
                                            lacking, lacking.find(' ') == std::string::npos ? "" : "s");
      break;
    }
    if (where.empty()) where = "no cgroup2 is mounted";
    return fmt::format(
        "{} ({}): the jail needs cgroup v2 with the memory, cpu and pids controllers at {} "
        "(boot with systemd.unified_cgroup_hierarchy=1)",
        what, where, root);
  }
  auto controllers = read_small_file(root + "/cgroup.controllers");
  if (!controllers) return controllers.error().message;
  const std::string lacking = missing_controllers(*controllers);
  if (!lacking.empty()) {
    return fmt::format(
        "the cgroup v2 controller(s) {} are not available at {} (cgroup.controllers: \"{}\"): "
        "a cgroup v1 hierarchy holds them or the kernel command line disables them",
        lacking, root, *controllers);
  }
  return "";
}

// "/user.slice/..." from "0::/user.slice/..." in /proc/self/cgroup.
Result<std::string> own_cgroup() {
  HUSK_TRY_ASSIGN(const std::string text, read_small_file("/proc/self/cgroup"));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return fail("/proc/self/cgroup has no cgroup v2 entry (0::)");
}

}  // namespace

Result<std::string> base(bool unprivileged) {
  if (!unprivileged) return std::string(kMount) + "/" + kRootBase;
  HUSK_TRY_ASSIGN(std::string own, own_cgroup());
  while (!own.empty() && own.back() == '/') own.pop_back();
  const size_t slash = own.rfind('/');
  if (slash != std::string::npos && own.substr(slash + 1) == kSelfLeaf) own.resize(slash);
  return std::string(kMount) + own;
}

std::vector<std::string> problems(bool unprivileged) {
  if (std::string p = mount_problem(); !p.empty()) return {p};
  const std::string root = kMount;
  if (!unprivileged) {
    if (!writable(root)) {
      return {fmt::format("{} is not writable ({}: mounted read-only, or husk is in a container)", root,
                          std::strerror(errno))};
    }
    // A cgroup namespace's root is an ordinary cgroup: it cannot hand
    // controllers down while it holds processes (the root cgroup can).
    auto enabled = read_small_file(root + "/cgroup.subtree_control");
    auto procs = read_small_file(root + "/cgroup.procs");
    const bool real_root = ::access((root + "/cgroup.type").c_str(), F_OK) != 0;
    if (enabled && procs && !real_root && !missing_controllers(*enabled).empty() &&
        procs->find_first_not_of(" \n") != std::string::npos) {
      return {fmt::format("{} is the root of a cgroup namespace and holds processes, so it cannot hand "
                          "the {} controllers down to the jail's cgroups",
                          root, missing_controllers(*enabled))};
    }
    return {};
  }
  auto where = base(true);
  if (!where) return {where.error().message};
  const std::string& b = *where;
  std::vector<std::string> out;
  for (const char* f : {"", "/cgroup.procs", "/cgroup.subtree_control"}) {
    if (!writable(b + f)) {
      out.push_back(fmt::format("the cgroup husk runs in ({}) is not delegated to uid {} (cannot write {}{}): {}",
                                b, ::geteuid(), b, f, kDelegateHint));
      return out;
    }
  }
  auto controllers = read_small_file(b + "/cgroup.controllers");
  const std::string lacking = missing_controllers(controllers ? *controllers : "");
  if (!lacking.empty()) {
    out.push_back(fmt::format("the {} controller(s) are not delegated to {} (its cgroup.controllers: \"{}\"): "
                              "delegate them (systemd: Delegate=memory cpu pids)",
                              lacking, b, controllers ? *controllers : ""));
    return out;
  }
  auto enabled = read_small_file(b + "/cgroup.subtree_control");
  auto procs = read_small_file(b + "/cgroup.procs");
  if (enabled && procs && !missing_controllers(*enabled).empty()) {
    std::istringstream in(*procs);
    std::string others;
    for (pid_t p = 0; in >> p;) {
      if (p != ::getpid()) others += (others.empty() ? "" : " ") + std::to_string(p);
    }
    if (!others.empty()) {
      out.push_back(fmt::format("{} also holds other processes ({}), so husk cannot hand controllers down to "
                                "the jail's cgroups: {}",
                                b, others, kDelegateHint));
    }
  }
  return out;
}

}  // namespace husk::jail::cgroup
