#include "guest-agent/src/pid1.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "guest-agent/src/log.h"
#include "guest-agent/src/sys.h"

namespace husk::guest {

namespace {

struct MountSpec {
  const char* source;
  const char* target;
  const char* type;
  unsigned long flags;
  const char* data;
};

// Order matters: /dev before /dev/pts, /sys before /sys/fs/cgroup.
constexpr MountSpec kMounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
    {"tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr},
};

// True when `path` is a mount point: its device differs from its parent's.
bool is_mount_point(const std::string& path) {
  struct stat self {}, parent {};
  if (::stat(path.c_str(), &self) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

}  // namespace

bool mount_filesystems() {
  bool first_init = false;
  for (const MountSpec& m : kMounts) {
    if (is_mount_point(m.target)) continue;
    if (std::strcmp(m.target, "/proc") == 0) first_init = true;
    if (const int err = make_dirs(m.target, 0755); err != 0) {
      HUSK_LOG("mkdir %s: %s", m.target, std::strerror(err));
      continue;
    }
    if (::mount(m.source, m.target, m.type, m.flags, m.data) != 0 && errno != EBUSY) {
      HUSK_LOG("mount %s on %s: %s", m.type, m.target, std::strerror(errno));
    }
  }
  // Links that udev would make; shells use /dev/fd for process substitution.
  const char* const kLinks[][2] = {{"/proc/self/fd", "/dev/fd"},
                                   {"/proc/self/fd/0", "/dev/stdin"},
                                   {"/proc/self/fd/1", "/dev/stdout"},
                                   {"/proc/self/fd/2", "/dev/stderr"}};
  for (const auto& link : kLinks) {
    if (::symlink(link[0], link[1]) != 0 && errno != EEXIST) {
      HUSK_LOG("symlink %s: %s", link[1], std::strerror(errno));
    }
  }
  return first_init;
}

void print_ready_marker() {
  // The first field of /proc/uptime as the shell's `read -r uptime _` has it.
  std::string uptime;
  if (read_text("/proc/uptime", uptime) != 0) uptime = "?";
  uptime = uptime.substr(0, uptime.find_first_of(" \n"));
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::fprintf(stdout, "HUSK_READY uptime=%s cpus=%ld\n", uptime.c_str(), cpus);
  std::fflush(stdout);
}

void ensure_std_fds() {
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) continue;
    int opened = ::open("/dev/console", O_RDWR | O_NOCTTY);
    if (opened < 0) opened = ::open("/dev/null", O_RDWR);
    if (opened >= 0 && opened != fd) {
      ::dup2(opened, fd);
      ::close(opened);
    }
  }
}

void protect_self() {
  if (const int err = write_text("/proc/self/oom_score_adj", "-1000"); err != 0) {
    HUSK_LOG("oom_score_adj: %s", std::strerror(err));
  }
  if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    HUSK_LOG("mlockall: %s", std::strerror(errno));
  }
}

std::string cmdline_value(const std::string& key) {
  std::string text;
  if (read_text("/proc/cmdline", text) != 0) return "";
  const std::string needle = key + "=";
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find_first_of(" \n", pos);
    const std::string word = text.substr(pos, end == std::string::npos ? end : end - pos);
    if (word.compare(0, needle.size(), needle) == 0) return word.substr(needle.size());
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return "";
}

int enable_cgroup_controllers(const std::string& root) {
  // One at a time so that a kernel without one controller still gets the
  // others. cpu is optional: the CPU-time limit reads cpu.stat, which the
  // cgroup core keeps without it. memory and pids are required.
  int first_err = 0;
  for (const char* c : {"+memory", "+pids", "+cpu"}) {
    const int err = write_text(root + "/cgroup.subtree_control", c);
    if (err != 0) {
      HUSK_LOG("enable cgroup controller %s: %s", c + 1, std::strerror(err));
      if (first_err == 0 && c[1] != 'c') first_err = err;
    }
  }
  return first_err;
}

}  // namespace husk::guest
