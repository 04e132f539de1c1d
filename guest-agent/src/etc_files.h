// The guest's resolver files for ConfigureNetwork (protocol.h):
// /etc/resolv.conf and /etc/hosts, written under a folder given by the
// caller so the unit tests write them to a temporary one
// (tests/unit/guest_agent/etc_files_test.cpp). Header-only for that reason:
// the unit tests link the runtime, not the agent's sources.
//
// resolv.conf is replaced as a whole. hosts keeps its own lines (the
// image's "127.0.0.1 localhost" and whatever else) and gets the host's
// entries in one marked block at the end, which the next configuration
// replaces, so configuring twice leaves one block. A missing hosts file is
// created with a localhost line.
//
// A writable /etc (an initramfs, the tmpfs overlay over a disk root) gets a
// temporary file renamed over the old one, so no reader sees half a file.
// A read-only /etc (EROFS: a disk mounted read-only without the overlay)
// cannot change: the file is written under `fallback_dir` (a tmpfs the
// agent owns, /run/husk/etc) and bind-mounted over the one in /etc, which
// must exist for that.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

// A failed step: its errno and what it was ("SIOCSIFMTU eth0 9000").
struct StepError {
  int err = 0;  // 0: no error
  std::string step;
  [[nodiscard]] std::string message() const { return step + ": " + std::strerror(err); }
};

inline constexpr std::string_view kHostsBegin = "# husk: begin (from the host, replaced when it configures again)";
inline constexpr std::string_view kHostsEnd = "# husk: end";
inline constexpr size_t kMaxEtcFile = 1u << 20;

inline std::string resolv_conf_text(const std::vector<std::string>& nameservers) {
  std::string out = "# Written by husk-agent.\n";
  if (nameservers.empty()) out += "# No nameservers: names resolve through /etc/hosts only.\n";
  for (const std::string& ns : nameservers) out += "nameserver " + ns + "\n";
  return out;
}

// `existing` (the hosts file as it is; empty when there is none) without
// the block an earlier configuration added, then a block with `entries`.
inline std::string hosts_text(std::string_view existing, const std::vector<agent::proto::HostEntry>& entries) {
  std::string out;
  bool in_block = false;
  while (!existing.empty()) {
    const size_t end = existing.find('\n');
    const std::string_view line = existing.substr(0, end);
    existing = end == std::string_view::npos ? std::string_view() : existing.substr(end + 1);
    if (!in_block && line == kHostsBegin) {
      in_block = true;
    } else if (in_block) {
      in_block = line != kHostsEnd;
    } else {
      out.append(line);
      out += '\n';
    }
  }
  if (out.find_first_not_of(" \t\n") == std::string::npos) out = "127.0.0.1\tlocalhost\n";
  if (entries.empty()) return out;
  out.append(kHostsBegin);
  out += '\n';
  for (const agent::proto::HostEntry& e : entries) out += e.address + "\t" + e.name + "\n";
  out.append(kHostsEnd);
  out += '\n';
  return out;
}

// Reads a file of at most kMaxEtcFile bytes. 0 or errno (EFBIG when larger).
inline int read_etc_file(const std::string& path, std::string& out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno;
  out.clear();
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxEtcFile) return EFBIG;
  }
}

// Creates or truncates `path` and writes `text` into it. 0 or errno.
inline int put_file(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return errno;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += static_cast<size_t>(n);
  }
  // A root disk's /etc is mode 0644 whatever the agent's umask was.
  return ::fchmod(fd.get(), 0644) == 0 ? 0 : errno;
}

// The read-only /etc case: `text` in fallback_dir/name, bound over
// etc_dir/name once. Later calls rewrite the file in place (a rename would
// leave the bind mount on the old file).
inline StepError write_over_readonly(const std::string& etc_dir, const std::string& name, const std::string& text,
                                     const std::string& fallback_dir) {
  for (size_t pos = 1; pos <= fallback_dir.size(); ++pos) {
    if (pos != fallback_dir.size() && fallback_dir[pos] != '/') continue;
    const std::string prefix = fallback_dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return {errno, "mkdir " + prefix};
  }
  const std::string file = fallback_dir + "/" + name;
  const std::string target = etc_dir + "/" + name;
  if (const int err = put_file(file, text); err != 0) return {err, "write " + file};
  struct stat ours {}, theirs {};
  if (::stat(file.c_str(), &ours) != 0) return {errno, "stat " + file};
  if (::stat(target.c_str(), &theirs) == 0 && ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino) {
    return {};  // bound by an earlier configuration
  }
  if (::mount(file.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return {errno, "bind-mount " + file + " over " + target + " (" + etc_dir + " is read-only)"};
  }
  return {};
}

// Replaces etc_dir/name with `text`; see the top of this file.
inline StepError write_etc_file(const std::string& etc_dir, const std::string& name, const std::string& text,
                                const std::string& fallback_dir) {
  // An initramfs may have no /etc at all. On a read-only root that has
  // one, mkdir fails with EEXIST before it would with EROFS.
  if (::mkdir(etc_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    if (errno == EROFS) return write_over_readonly(etc_dir, name, text, fallback_dir);
    return {errno, "mkdir " + etc_dir};
  }
  const std::string target = etc_dir + "/" + name;
  const std::string tmp = etc_dir + "/." + name + ".husk-tmp";
  if (const int err = put_file(tmp, text); err != 0) {
    if (err == EROFS) return write_over_readonly(etc_dir, name, text, fallback_dir);
    ::unlink(tmp.c_str());
    return {err, "write " + tmp};
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return {err, "rename " + tmp + " to " + target};
  }
  return {};
}

// resolv.conf, then hosts (its own lines kept). Both or the first failure.
inline StepError write_resolver_files(const std::string& etc_dir, const std::string& fallback_dir,
                                      const agent::proto::ConfigureNetwork& m) {
  if (StepError e = write_etc_file(etc_dir, "resolv.conf", resolv_conf_text(m.nameservers), fallback_dir); e.err) {
    return e;
  }
  std::string existing;
  if (const int err = read_etc_file(etc_dir + "/hosts", existing); err != 0 && err != ENOENT) {
    return {err, "read " + etc_dir + "/hosts"};
  }
  return write_etc_file(etc_dir, "hosts", hosts_text(existing, m.hosts), fallback_dir);
}

}  // namespace husk::guest
