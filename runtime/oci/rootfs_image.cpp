#include "runtime/oci/rootfs_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/scope_guard.h"
#include "runtime/common/spawn.h"
#include "runtime/common/unique_fd.h"
#include "runtime/oci/tree_digest.h"

namespace husk::oci {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kImageSuffix = ".ext4";
constexpr std::string_view kLockSuffix = ".lock";
constexpr std::string_view kTempInfix = ".tmp-";
constexpr size_t kHexDigits = 64;
constexpr size_t kMaxMkfsOutput = 16 * 1024;
constexpr int kBuildAttempts = 4;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

bool is_hex_digest(std::string_view s) {
  return s.size() == kHexDigits &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<void> ensure_dir(const std::string& dir) {
  if (dir.empty()) return fail("the image cache folder is not set");
  const fs::path parent = fs::path(dir).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) return fail(fmt::format("create {}: {}", parent.string(), ec.message()));
  // 0700: the images hold whole container file systems, other users' too.
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return fail_errno("create the image cache " + dir);
  struct stat st{};
  if (::stat(dir.c_str(), &st) < 0) return fail_errno("stat " + dir);
  if (!S_ISDIR(st.st_mode)) return fail(fmt::format("the image cache {} is not a folder", dir));
  return {};
}

std::string image_path(const std::string& dir, const std::string& hex) {
  return fmt::format("{}/{}{}", dir, hex, kImageSuffix);
}

std::string lock_path(const std::string& dir, const std::string& hex) {
  return fmt::format("{}/{}{}", dir, hex, kLockSuffix);
}

// Called with the lock held, so a later locker notices (lock_digest) and
// takes a fresh one.
void drop_lock_file(const std::string& dir, const std::string& hex) { ::unlink(lock_path(dir, hex).c_str()); }

// The flock on `<dir>/<hex>.lock`. Eviction removes the lock file while it
// holds it, so a locker checks that the file it locked is still the one at
// the path, and tries again if not. With `wait` false, a held lock gives
// an empty fd.
Result<UniqueFd> lock_digest(const std::string& dir, const std::string& hex, bool wait) {
  const std::string path = lock_path(dir, hex);
  for (;;) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return fail_errno("open the lock " + path);
    int rc = 0;
    while ((rc = ::flock(fd.get(), wait ? LOCK_EX : LOCK_EX | LOCK_NB)) < 0 && errno == EINTR) {
    }
    if (rc < 0) {
      if (!wait && errno == EWOULDBLOCK) return UniqueFd();
      return fail_errno("lock " + path);
    }
    struct stat held{};
    struct stat named{};
    if (::fstat(fd.get(), &held) < 0) return fail_errno("stat " + path);
    if (::stat(path.c_str(), &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino) return fd;
  }
}

Result<std::string> find_mkfs() {
  std::vector<std::string> dirs;
  const char* path = std::getenv("PATH");
  for (std::string_view rest = path != nullptr ? path : ""; !rest.empty();) {
    const size_t colon = rest.find(':');
    if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  // A user's PATH often lacks the sbin folders that e2fsprogs installs into.
  dirs.insert(dirs.end(), {"/usr/sbin", "/sbin"});
  for (const std::string& d : dirs) {
    const std::string candidate = d + "/mkfs.ext4";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return fail("mkfs.ext4 not found: install the Debian package e2fsprogs");
}

struct ProcessOutput {
  int status = 0;
  std::string output;  // stdout and stderr, the first kMaxMkfsOutput bytes
};

// Runs argv (no shell) with stdin /dev/null and stdout and stderr into a
// pipe, default signal dispositions and an empty mask, and waits for it.
Result<ProcessOutput> run(const std::vector<std::string>& argv) {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) < 0) return fail_errno("pipe for " + argv[0]);
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  HUSK_TRY_ASSIGN(const pid_t pid, spawn_process(argv, SpawnOptions{.output_fd = write_end.get()}));
  write_end.reset();

  ProcessOutput out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // Read to the end (a full pipe would stall mkfs) but keep the start.
    const size_t keep = std::min(static_cast<size_t>(n), kMaxMkfsOutput - std::min(kMaxMkfsOutput, out.output.size()));
    out.output.append(buf, keep);
  }
  while (::waitpid(pid, &out.status, 0) < 0) {
    if (errno != EINTR) return fail_errno(fmt::format("wait for {} (pid {})", argv[0], pid));
  }
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ';');
  return s;
}

bool says_too_small(const std::string& output) {
  std::string lower = output;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.find("could not allocate") != std::string::npos || lower.find("no space") != std::string::npos ||
         lower.find("not enough space") != std::string::npos;
}

// rootfs/disk/mkext4's default size: the content and inode tables, the
// journal, about 1% of metadata, then 10% + 16 MiB free, rounded up to 8 MiB.
uint64_t image_mib(const TreeSummary& tree, uint64_t inodes) {
  const uint64_t mib = (tree.data_kib + inodes / 4) / 1024;
  uint64_t journal = 16;
  if (mib < 100) journal = 4;
  if (mib > 400) journal = 64;
  const uint64_t size = mib + mib / 100 + journal + mib / 10 + 16;
  return (size + 7) / 8 * 8;
}

// The names in a folder (empty when it cannot be read: callers only tidy up).
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

// Removes `<hex>.tmp-*`: under the digest's lock, any there is a dead builder's.
void sweep_temporaries(const std::string& dir, const std::string& hex) {
  const std::string stem = hex + std::string(kTempInfix);
  for (const std::string& name : names_in(dir)) {
    if (name.rfind(stem, 0) == 0) ::unlink((dir + "/" + name).c_str());
  }
}

// Builds the image of `folder` at `final_path`; the caller holds the lock.
Result<void> build(const std::string& folder, const TreeSummary& tree, const std::string& dir,
                   const std::string& final_path) {
  HUSK_TRY_ASSIGN(const std::string mkfs, find_mkfs());
  sweep_temporaries(dir, tree.hex);
  const std::string temp = fmt::format("{}/{}{}{}", dir, tree.hex, kTempInfix, ::getpid());
  ScopeGuard remove_temp([&] { ::unlink(temp.c_str()); });

  uint64_t inodes = tree.entries + tree.entries / 5 + 1024;
  uint64_t mib = image_mib(tree, inodes);
  for (int attempt = 1;; ++attempt) {
    ::unlink(temp.c_str());
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return fail_errno("create " + temp);
    if (::ftruncate(fd.get(), static_cast<off_t>(mib << 20)) < 0) return fail_errno("size " + temp);
    fd.reset();
    // 4 KiB blocks, nothing reserved for root, inode tables and journal
    // written now (a mounted image never starts a lazy-init thread), the
    // folder's owner on the image's root.
    const std::vector<std::string> argv = {
        mkfs, "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-N", std::to_string(inodes), "-L", "husk-root",
        "-E", fmt::format("lazy_itable_init=0,lazy_journal_init=0,root_owner={}:{}", tree.root_uid, tree.root_gid),
        "-d", folder, temp};
    HUSK_TRY_ASSIGN(const ProcessOutput out, run(argv));
    if (WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0) break;
    const std::string said = trimmed(out.output);
    if (!says_too_small(out.output) || attempt == kBuildAttempts) {
      return fail(fmt::format("mkfs.ext4 failed building an image of {} ({} MiB, {} inodes): {}", folder, mib,
                              inodes, said.empty() ? "no message" : said));
    }
    if (said.find("inode") != std::string::npos) inodes += inodes / 4;
    mib = (mib * 5 / 4 + 7) / 8 * 8;
    spdlog::debug("rootfs image of {} too small ({}); trying {} MiB, {} inodes", folder, said, mib, inodes);
  }
  // Read-only: every container of this content shares the file.
  if (::chmod(temp.c_str(), 0444) < 0) return fail_errno("chmod " + temp);
  if (::rename(temp.c_str(), final_path.c_str()) < 0) return fail_errno("rename " + temp + " to " + final_path);
  remove_temp.dismiss();
  UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd) (void)::fsync(dirfd.get());
  return {};
}

// True when some process (this one too) holds the file open: a write lease
// is refused then. The lease also holds back anyone opening the file until
// it is released, so the check cannot go stale before the unlink. Leases
// off or not allowed: nothing to tell, false.
struct LeaseCheck {
  UniqueFd fd;
  bool in_use = false;
};

LeaseCheck check_in_use(const std::string& path) {
  LeaseCheck check;
  check.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!check.fd) return check;
  if (::fcntl(check.fd.get(), F_SETLEASE, F_WRLCK) < 0) {
    check.in_use = errno == EAGAIN;
    if (!check.in_use) spdlog::debug("lease on {}: {} (cannot tell whether it is in use)", path, strerror(errno));
  }
  return check;
}

struct Entry {
  std::string hex;
  std::string path;
  uint64_t bytes = 0;
  struct timespec mtime{};
};

// Least recently used first, until the images fit in max_bytes.
void evict(const ImageCacheOptions& cache, const std::string& keep_hex) {
  std::vector<Entry> images;
  std::vector<std::string> temporaries;
  uint64_t total = 0;
  for (const std::string& name : names_in(cache.dir)) {
    const std::string path = cache.dir + "/" + name;
    const std::string hex = name.substr(0, std::min(name.size(), kHexDigits));
    if (!is_hex_digest(hex)) continue;
    const std::string_view rest = std::string_view(name).substr(kHexDigits);
    if (rest.rfind(kTempInfix, 0) == 0) {
      temporaries.push_back(hex);
      continue;
    }
    if (rest != kImageSuffix) continue;
    struct stat st{};
    if (::lstat(path.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
    images.push_back(Entry{hex, path, static_cast<uint64_t>(st.st_blocks) * 512, st.st_mtim});
    total += images.back().bytes;
  }
  // A build killed before its rename left its file; unless the lock says
  // a builder is at work now, it goes.
  for (const std::string& hex : temporaries) {
    auto lock = lock_digest(cache.dir, hex, false);
    if (!lock || !lock->valid()) continue;
    sweep_temporaries(cache.dir, hex);
    struct stat st{};
    if (::lstat(image_path(cache.dir, hex).c_str(), &st) < 0) drop_lock_file(cache.dir, hex);
  }
  if (total <= cache.max_bytes) return;
  std::sort(images.begin(), images.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.mtime.tv_sec, a.mtime.tv_nsec) < std::tie(b.mtime.tv_sec, b.mtime.tv_nsec);
  });
  for (const Entry& image : images) {
    if (total <= cache.max_bytes) break;
    if (image.hex == keep_hex) continue;
    auto lock = lock_digest(cache.dir, image.hex, false);
    if (!lock || !lock->valid()) continue;  // being built or hit right now
    struct stat st{};
    if (::lstat(image.path.c_str(), &st) < 0) continue;
    const auto age = std::chrono::system_clock::now() -
                     std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
    if (age < cache.keep_recent) continue;
    LeaseCheck lease = check_in_use(image.path);
    if (lease.in_use) continue;
    if (::unlink(image.path.c_str()) < 0) {
      spdlog::warn("evict {}: {}", image.path, strerror(errno));
      continue;
    }
    drop_lock_file(cache.dir, image.hex);
    spdlog::debug("evicted {} ({} bytes)", image.path, image.bytes);
    total -= std::min(total, image.bytes);
  }
}

}  // namespace

std::string default_image_cache_dir() {
  if (::geteuid() == 0) return "/var/cache/husk/oci-images";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/husk/oci-images";
  }
  const char* home = std::getenv("HOME");
  std::string base = home != nullptr && *home != '\0' ? home : "";
  if (base.empty()) {
    if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) base = pw->pw_dir;
  }
  if (base.empty()) base = "/tmp";
  return base + "/.cache/husk/oci-images";
}

Result<std::string> tree_digest(const std::string& folder) {
  HUSK_TRY_ASSIGN(const TreeSummary tree, summarize_tree(folder));
  return "sha256:" + tree.hex;
}

Result<RootfsImage> rootfs_image(const std::string& folder, const ImageCacheOptions& cache) {
  RootfsImage image;
  const auto hash_start = Clock::now();
  HUSK_TRY_ASSIGN(const TreeSummary tree, summarize_tree(folder));
  image.hash_time = since(hash_start);
  image.digest = "sha256:" + tree.hex;
  HUSK_TRY(ensure_dir(cache.dir));
  image.path = image_path(cache.dir, tree.hex);
  {
    HUSK_TRY_ASSIGN(UniqueFd lock, lock_digest(cache.dir, tree.hex, true));
    struct stat st{};
    if (::lstat(image.path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      // A hit: the mtime is the LRU clock.
      if (::utimensat(AT_FDCWD, image.path.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) < 0) {
        spdlog::debug("touch {}: {}", image.path, strerror(errno));
      }
    } else {
      const auto build_start = Clock::now();
      if (auto made = build(folder, tree, cache.dir, image.path); !made) {
        // No image, so no lock file wanted; removed while held, as evict does.
        drop_lock_file(cache.dir, tree.hex);
        return Unexpected(made.error());
      }
      image.build_time = since(build_start);
      image.built = true;
    }
  }
  if (cache.max_bytes > 0) evict(cache, tree.hex);
  return image;
}

}  // namespace husk::oci
