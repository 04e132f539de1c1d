#include "runtime/oci/tree_digest.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/common/sha256.h"
#include "runtime/common/unique_fd.h"

namespace husk::oci {

namespace {

// Bumped whenever what is hashed, or how rootfs_image builds an image from
// it, changes: old cache entries then stop matching instead of being reused.
constexpr std::string_view kFormat = "husk-rootfs-digest 1\n";
constexpr size_t kReadBuffer = size_t{1} << 20;
// One descriptor is open per level; a tree deeper than this is refused
// rather than running out of descriptors half way.
constexpr int kMaxDepth = 256;
constexpr uint64_t kBlock = 4096;
// Extended attributes that fit beside a 256-byte ext4 inode's fields.
constexpr uint64_t kInodeXattrRoom = 96;

uint64_t blocks_kib(uint64_t bytes) { return (bytes + kBlock - 1) / kBlock * (kBlock / 1024); }

// Records are unambiguous: numbers end with ';', strings carry their length.
void put_number(std::string& out, char tag, uint64_t value) {
  out += tag;
  out += std::to_string(value);
  out += ';';
}

void put_string(std::string& out, char tag, std::string_view s) {
  out += tag;
  out += std::to_string(s.size());
  out += ':';
  out.append(s);
}

char type_char(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    default: return '?';
  }
}

// A size query, then the bytes; retried when the list or value grows in between.
template <typename Call>
Result<std::string> read_xattr_bytes(const std::string& what, Call call) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t size = call(nullptr, 0);
    if (size < 0) {
      if (errno == ENOTSUP) return std::string();
      return fail_errno(what);
    }
    std::string bytes(static_cast<size_t>(size), '\0');
    ssize_t got = size == 0 ? 0 : call(bytes.data(), bytes.size());
    if (got >= 0) {
      bytes.resize(static_cast<size_t>(got));
      return bytes;
    }
    if (errno != ERANGE) return fail_errno(what);
  }
  return fail(what + ": keeps changing");
}

class Walker {
 public:
  explicit Walker(std::string root) : root_(std::move(root)), buffer_(kReadBuffer) {}

  Result<TreeSummary> run() {
    UniqueFd top(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!top) {
      if (errno == ENOENT) return fail(fmt::format("rootfs folder {} does not exist", root_));
      if (errno == ENOTDIR) return fail(fmt::format("rootfs {} is not a folder", root_));
      return fail_errno("open rootfs folder " + root_);
    }
    struct stat st{};
    if (::fstat(top.get(), &st) < 0) return fail_errno("stat " + root_);
    summary_.root_uid = st.st_uid;
    summary_.root_gid = st.st_gid;
    hash_.update(kFormat);
    std::string record;
    HUSK_TRY(describe(top.get(), "", "", st, record));
    HUSK_TRY(walk(top.get(), "", 0, record));
    summary_.hex = hash_.hex();
    return summary_;
  }

 private:
  std::string full(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  // The folder's entries, sorted bytewise (not by locale: the digest must
  // not depend on the caller's environment).
  Result<std::vector<std::string>> list(int dirfd, const std::string& rel) {
    UniqueFd copy(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
    if (!copy) return fail_errno("dup " + full(rel));
    DIR* dir = ::fdopendir(copy.get());
    if (dir == nullptr) return fail_errno("opendir " + full(rel));
    copy.release();
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(dir)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    const int err = errno;
    ::closedir(dir);
    if (err != 0) return fail_errno("read folder " + full(rel), err);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<void> walk(int dirfd, const std::string& rel, int depth, std::string& record) {
    if (depth >= kMaxDepth) return fail(fmt::format("{}: more than {} folders deep", full(rel), kMaxDepth));
    HUSK_TRY_ASSIGN(const std::vector<std::string> names, list(dirfd, rel));
    // The folder's own blocks: ext4 entries are 8 bytes plus the name,
    // 4-byte aligned, after "." and "..".
    uint64_t dir_bytes = 24;
    for (const std::string& name : names) dir_bytes += 8 + (name.size() + 3) / 4 * 4;
    summary_.data_kib += blocks_kib(dir_bytes);

    for (const std::string& name : names) {
      const std::string child = rel.empty() ? name : rel + "/" + name;
      struct stat st{};
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) return fail_errno("stat " + full(child));
      HUSK_TRY(describe(dirfd, name, child, st, record));
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return fail_errno("open folder " + full(child));
        HUSK_TRY(walk(sub.get(), child, depth + 1, record));
      }
    }
    return {};
  }

  // Hashes one entry's record into the digest. `name` is relative to dirfd
  // ("" for the folder itself, whose fd dirfd is).
  Result<void> describe(int dirfd, const std::string& name, const std::string& rel, const struct stat& st,
                        std::string& record) {
    record.clear();
    put_string(record, 'P', rel);
    record += 'T';
    record += type_char(st.st_mode);
    if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) && st.st_nlink > 1) {
      // mkfs -d makes this a hard link of the first path it met with this
      // inode; the digest says the same, without the inode number.
      auto [it, first] = links_.try_emplace({st.st_dev, st.st_ino}, rel);
      if (!first) {
        put_string(record, '=', it->second);
        record += '\n';
        hash_.update(record);
        return {};
      }
    }
    ++summary_.entries;
    put_number(record, 'M', st.st_mode & 07777);
    put_number(record, 'U', st.st_uid);
    put_number(record, 'G', st.st_gid);
    if (S_ISREG(st.st_mode)) {
      put_number(record, 'S', static_cast<uint64_t>(st.st_size));
      HUSK_TRY_ASSIGN(const std::string content, hash_file(dirfd, name, rel, st));
      put_string(record, 'H', content);
      summary_.data_kib += blocks_kib(static_cast<uint64_t>(st.st_size));
    } else if (S_ISLNK(st.st_mode)) {
      HUSK_TRY_ASSIGN(const std::string target, read_link(dirfd, name, rel));
      put_string(record, 'L', target);
      // ext4 keeps targets under 60 bytes in the inode.
      if (target.size() > 59) summary_.data_kib += blocks_kib(target.size());
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      put_number(record, 'J', major(st.st_rdev));
      put_number(record, 'N', minor(st.st_rdev));
    }
    HUSK_TRY(add_xattrs(rel, record));
    record += '\n';
    hash_.update(record);
    return {};
  }

  Result<std::string> read_link(int dirfd, const std::string& name, const std::string& rel) {
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlinkat(dirfd, name.c_str(), target.data(), target.size());
    if (n < 0) return fail_errno("readlink " + full(rel));
    if (static_cast<size_t>(n) >= target.size()) return fail(fmt::format("readlink {}: target too long", full(rel)));
    target.resize(static_cast<size_t>(n));
    return target;
  }

  Result<std::string> hash_file(int dirfd, const std::string& name, const std::string& rel,
                                const struct stat& st) {
    // O_NOATIME where allowed (the owner or CAP_FOWNER): hashing a rootfs
    // should not dirty every inode in it.
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME));
    if (!fd && errno == EPERM) fd.reset(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return fail_errno("open " + full(rel));
    Sha256 content;
    uint64_t total = 0;
    for (;;) {
      ssize_t n = ::read(fd.get(), buffer_.data(), buffer_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail_errno("read " + full(rel));
      }
      if (n == 0) break;
      content.update(std::string_view(buffer_.data(), static_cast<size_t>(n)));
      total += static_cast<uint64_t>(n);
    }
    if (total != static_cast<uint64_t>(st.st_size)) {
      return fail(fmt::format("{} changed while it was hashed ({} bytes, then {})", full(rel), st.st_size, total));
    }
    return content.hex();
  }

  Result<void> add_xattrs(const std::string& rel, std::string& record) {
    const std::string path = full(rel);
    HUSK_TRY_ASSIGN(const std::string list, read_xattr_bytes("list xattrs of " + path, [&](char* buf, size_t size) {
                      return ::llistxattr(path.c_str(), buf, size);
                    }));
    std::vector<std::string> names;
    for (size_t at = 0; at < list.size();) {
      const size_t end = list.find('\0', at);
      const size_t stop = end == std::string::npos ? list.size() : end;
      if (stop > at) names.emplace_back(list.substr(at, stop - at));
      at = stop + 1;
    }
    std::sort(names.begin(), names.end());
    uint64_t xattr_bytes = 0;
    for (const std::string& attr : names) {
      auto value = read_xattr_bytes("read xattr " + attr + " of " + path, [&](char* buf, size_t size) {
        return ::lgetxattr(path.c_str(), attr.c_str(), buf, size);
      });
      if (!value) {
        // Gone between the list and the read: not part of the tree any more.
        if (value.error().code == ENODATA) continue;
        return Unexpected(value.error());
      }
      put_string(record, 'X', attr);
      put_string(record, 'V', *value);
      xattr_bytes += attr.size() + value->size() + 16;
    }
    // What does not fit in the inode's spare room takes a block of its own.
    if (xattr_bytes > kInodeXattrRoom) summary_.data_kib += blocks_kib(xattr_bytes);
    return {};
  }

  std::string root_;
  std::vector<char> buffer_;
  Sha256 hash_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;  // inode -> first path met
  TreeSummary summary_;
};

}  // namespace

Result<TreeSummary> summarize_tree(const std::string& folder) {
  if (folder.empty()) return fail("rootfs folder: empty path");
  return Walker(folder).run();
}

}  // namespace husk::oci
