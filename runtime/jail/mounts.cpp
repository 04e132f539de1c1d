// The jail's filesystem (mounts.h): the root folder prepared by the parent,
// then entered by the jailed process with bind mounts and pivot_root.
#include "runtime/jail/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "runtime/common/unique_fd.h"

namespace husk::jail {

namespace {

// "/dev/kvm" -> {"dev", "kvm"}; an error for anything but a plain absolute
// path below "/".
Result<std::vector<std::string>> components(const std::string& target) {
  if (target.empty() || target[0] != '/') {
    return fail(fmt::format("jail bind target \"{}\" is not an absolute path", target));
  }
  std::vector<std::string> parts;
  std::istringstream in(target.substr(1));
  for (std::string part; std::getline(in, part, '/');) {
    if (part.empty() || part == "." || part == "..") {
      return fail(fmt::format("jail bind target \"{}\" is not a plain path (empty, . or .. component)", target));
    }
    parts.push_back(part);
  }
  if (parts.empty()) return fail("jail bind target \"/\" would hide the jail's root");
  return parts;
}

// Makes `<root>/<target>` exist as an empty file or folder (a mount point),
// with its parent folders, never following a symlink.
Result<void> make_mount_point(const std::string& root, const Bind& bind, bool directory) {
  HUSK_TRY_ASSIGN(const std::vector<std::string> parts, components(bind.target));
  UniqueFd dir(::open(root.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!dir) return fail_errno("open jail root " + root);
  std::string path = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path += "/" + parts[i];
    if (::mkdirat(dir.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("mkdir " + path);
    UniqueFd next(::openat(dir.get(), parts[i].c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!next) return fail_errno("open " + path);
    dir = std::move(next);
  }
  const std::string& last = parts.back();
  path += "/" + last;
  if (directory) {
    if (::mkdirat(dir.get(), last.c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("mkdir " + path);
    struct stat st {};
    if (::fstatat(dir.get(), last.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return fail_errno("stat " + path);
    if (!S_ISDIR(st.st_mode)) return fail(fmt::format("{} exists and is not a folder", path));
    return {};
  }
  UniqueFd file(::openat(dir.get(), last.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (!file) return fail_errno("create mount point " + path);
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) return fail_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return fail(fmt::format("{} exists and is not a regular file", path));
  return {};
}

// The flags a bind remount must keep: in a user namespace the kernel locks
// those of the mount the bind came from (mount_namespaces(7)).
unsigned long kept_flags(const std::string& path, Result<void>& error) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) {
    error = fail_errno("statvfs " + path);
    return 0;
  }
  unsigned long flags = 0;
  const std::pair<unsigned long, unsigned long> map[] = {
      {ST_RDONLY, MS_RDONLY},   {ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},
      {ST_NOEXEC, MS_NOEXEC},   {ST_NOATIME, MS_NOATIME},       {ST_NODIRATIME, MS_NODIRATIME},
      {ST_RELATIME, MS_RELATIME}};
  for (const auto& [st_flag, ms_flag] : map) {
    if ((st.f_flag & st_flag) != 0) flags |= ms_flag;
  }
  return flags;
}

Result<void> remount(const std::string& path, unsigned long add) {
  Result<void> error;
  const unsigned long flags = kept_flags(path, error);
  HUSK_TRY(error);
  if (::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_BIND | flags | add, nullptr) != 0) {
    return fail_errno("remount " + path);
  }
  return {};
}

}  // namespace

Result<void> prepare_root(const JailSpec& spec) {
  struct stat root {};
  if (::stat(spec.root.c_str(), &root) != 0) return fail_errno("jail root " + spec.root);
  if (!S_ISDIR(root.st_mode)) return fail(fmt::format("jail root {} is not a folder", spec.root));
  if (!spec.user_namespace && root.st_uid == spec.uid) {
    return fail(fmt::format("jail root {} belongs to the jail's uid {}", spec.root, spec.uid));
  }
  // Everything is checked before anything is made: a bad spec leaves the
  // folder as it was.
  std::vector<bool> directory;
  for (const Bind& bind : spec.binds) {
    HUSK_TRY(components(bind.target));
    struct stat source {};
    if (::stat(bind.source.c_str(), &source) != 0) return fail_errno("jail bind source " + bind.source);
    directory.push_back(S_ISDIR(source.st_mode));
  }
  // Traversable for the jail's uid but not writable: the VMM must not
  // create or replace anything in the folder whose sockets husk (root)
  // connects to later.
  if (!spec.user_namespace && ::chmod(spec.root.c_str(), 0711) != 0) return fail_errno("chmod 0711 " + spec.root);
  for (size_t i = 0; i < spec.binds.size(); ++i) HUSK_TRY(make_mount_point(spec.root, spec.binds[i], directory[i]));
  return {};
}

Result<void> enter_root(const JailSpec& spec) {
  // Nothing mounted or unmounted here reaches the host, nor the other way.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail_errno("make / private");
  // pivot_root needs the new root to be a mount point.
  if (::mount(spec.root.c_str(), spec.root.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return fail_errno("bind-mount the jail root " + spec.root);
  }
  for (const Bind& bind : spec.binds) {
    const std::string target = spec.root + bind.target;
    if (::mount(bind.source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return fail_errno(fmt::format("bind-mount {} on {}", bind.source, target));
    }
    struct stat source {};
    if (::stat(target.c_str(), &source) != 0) return fail_errno("stat " + target);
    const bool device = S_ISCHR(source.st_mode) || S_ISBLK(source.st_mode);
    const unsigned long flags =
        MS_NOSUID | MS_NOEXEC | (device ? 0 : MS_NODEV) | (bind.read_only ? MS_RDONLY : 0);
    HUSK_TRY(remount(target, flags));
  }
  // pivot_root(".", ".") stacks the old root on top of the new one, where
  // it is detached at once: no folder for it is needed in the jail.
  if (::chdir(spec.root.c_str()) != 0) return fail_errno("chdir " + spec.root);
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail_errno("pivot_root " + spec.root);
  if (::umount2(".", MNT_DETACH) != 0) return fail_errno("detach the old root");
  if (::chdir("/") != 0) return fail_errno("chdir /");
  // Each bind is its own mount with its own flags, so nodev here does not
  // reach /dev/kvm.
  return remount("/", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

}  // namespace husk::jail
