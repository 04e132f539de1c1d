// PrivateDir: creation with its lock, and the sweep of folders left behind by
// owners that were killed before their destructor ran.
#include "runtime/common/private_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/common/scope_guard.h"

namespace husk {

namespace {

constexpr const char* kLockName = ".lock";
// The lock is made and taken under this name, then renamed to kLockName, so
// no sweeper ever finds a `.lock` that is not yet held.
constexpr const char* kLockStaging = ".lock-new";
constexpr size_t kSuffixLength = 6;        // mkdtemp's XXXXXX
constexpr long kMaxNamesScanned = 100000;  // names read from the parent per sweep
constexpr size_t kMaxCandidates = 64;      // matching folders examined per sweep
constexpr int kMaxRemovals = 4096;         // entries unlinked per sweep
constexpr int kMaxDepth = 16;              // nesting inside one folder
// A folder without a lock this recent may be one whose creator has not yet
// put its lock in place: it is in use.
constexpr time_t kUnlockedGraceSeconds = 60;

std::string tmp_parent() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

// `<prefix>-` followed by exactly mkdtemp's six letters or digits, so that
// another prefix that merely starts like this one never matches.
bool matches(std::string_view name, std::string_view prefix) {
  if (name.size() != prefix.size() + 1 + kSuffixLength) return false;
  if (name.substr(0, prefix.size()) != prefix || name[prefix.size()] != '-') return false;
  for (const char c : name.substr(prefix.size() + 1)) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum) return false;
  }
  return true;
}

// Calls f(name) for every entry of the directory `dirfd` but . and .., until
// f returns false. The descriptor stays open and owned by the caller.
template <typename F>
Result<void> for_each_name(int dirfd, F f) {
  const int copy = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return fail_errno("dup");
  struct CloseDir {
    void operator()(DIR* d) const { ::closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> dir(::fdopendir(copy));
  if (!dir) {
    const int err = errno;
    ::close(copy);
    return fail_errno("fdopendir", err);
  }
  ::rewinddir(dir.get());
  errno = 0;
  while (const dirent* entry = ::readdir(dir.get())) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != ".." && !f(name)) return {};
    errno = 0;
  }
  if (errno != 0) return fail_errno("readdir");
  return {};
}

// Unlinks everything inside `dirfd` depth-first without following symlinks,
// skipping `skip` (the lock, removed last by the caller). Each unlink spends
// one unit of `budget`.
Result<void> remove_contents(int dirfd, const char* skip, int depth, int& budget) {
  if (depth > kMaxDepth) return fail("nested too deep");
  std::vector<std::string> names;
  HUSK_TRY(for_each_name(dirfd, [&](std::string_view name) {
    if (skip == nullptr || name != skip) names.emplace_back(name);
    return names.size() <= static_cast<size_t>(budget);
  }));
  for (const std::string& name : names) {
    if (budget-- <= 0) return fail("entry budget spent");
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return fail_errno("stat " + name);
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) {
        if (errno == ENOENT) continue;
        return fail_errno("open " + name);
      }
      if (auto r = remove_contents(sub.get(), nullptr, depth + 1, budget); !r) {
        return wrap(name, r.error());
      }
    }
    if (::unlinkat(dirfd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
      return fail_errno("remove " + name);
    }
  }
  return {};
}

// Looks at one candidate folder of the parent `parentfd`; removes it when
// its owner is gone. Returns whether it removed it.
Result<bool> sweep_one(int parentfd, const std::string& name, int& budget) {
  UniqueFd dir(::openat(parentfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    // A symlink (ELOOP), a file (ENOTDIR) or gone meanwhile: not ours to touch.
    if (errno == ELOOP || errno == ENOTDIR || errno == ENOENT) return false;
    return fail_errno("open");
  }
  // Checked on the opened descriptor, so a rename behind our back cannot
  // swap in something else.
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0) return fail_errno("stat");
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) return false;

  UniqueFd lock(::openat(dir.get(), kLockName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (lock) {
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return false;  // a live owner
      return fail_errno("flock .lock");
    }
    // Another sweeper that held this lock before us has already removed it.
    struct stat lock_st {};
    if (::fstat(lock.get(), &lock_st) != 0) return fail_errno("stat .lock");
    if (lock_st.st_nlink == 0) return false;
  } else if (errno == ENOENT) {
    if (std::time(nullptr) - st.st_mtim.tv_sec < kUnlockedGraceSeconds) return false;
  } else {
    return fail_errno("open .lock");
  }

  // The lock (when there is one) stays held until the folder is gone, so a
  // second sweeper sees a live owner, or no lock and a fresh mtime.
  HUSK_TRY(remove_contents(dir.get(), kLockName, 0, budget));
  if (::unlinkat(dir.get(), kLockName, 0) != 0 && errno != ENOENT) return fail_errno("remove .lock");
  // Remove by name only if the name is still the folder we emptied.
  struct stat now {};
  if (::fstatat(parentfd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return fail_errno("stat");
  }
  if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) return false;
  if (::unlinkat(parentfd, name.c_str(), AT_REMOVEDIR) != 0) return fail_errno("rmdir");
  return true;
}

// Creates the lock in the new folder `path`, takes it, and only then gives
// it its real name. Until the rename the folder has no lock and a fresh
// mtime, which a sweeper reads as "in use".
Result<UniqueFd> take_lock(const std::string& path) {
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return fail_errno("open " + path);
  UniqueFd lock(::openat(dir.get(), kLockStaging, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) return fail_errno(fmt::format("create {}/{}", path, kLockStaging));
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) return fail_errno(fmt::format("flock {}/{}", path, kLockStaging));
  if (::renameat(dir.get(), kLockStaging, dir.get(), kLockName) != 0) {
    return fail_errno(fmt::format("rename {}/{}", path, kLockStaging));
  }
  return lock;
}

}  // namespace

int PrivateDir::remove_stale(const std::string& parent, const std::string& prefix) {
  UniqueFd parentfd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parentfd) {
    spdlog::debug("private dir sweep: open {}: {}", parent, std::strerror(errno));
    return 0;
  }
  std::vector<std::string> candidates;
  long scanned = 0;
  auto listed = for_each_name(parentfd.get(), [&](std::string_view name) {
    if (matches(name, prefix)) candidates.emplace_back(name);
    return ++scanned < kMaxNamesScanned && candidates.size() < kMaxCandidates;
  });
  if (!listed) spdlog::debug("private dir sweep: list {}: {}", parent, listed.error().message);

  int removed = 0;
  int budget = kMaxRemovals;
  for (const std::string& name : candidates) {
    auto swept = sweep_one(parentfd.get(), name, budget);
    if (!swept) {
      spdlog::debug("private dir sweep: {}/{}: {}", parent, name, swept.error().message);
    } else if (*swept) {
      spdlog::debug("private dir sweep: removed {}/{} (its owner is gone)", parent, name);
      ++removed;
    }
    if (budget <= 0) break;
  }
  return removed;
}

Result<PrivateDir> PrivateDir::create(const std::string& prefix) {
  const std::string parent = tmp_parent();
  remove_stale(parent, prefix);
  std::string path = parent + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(path.data()) == nullptr) return fail_errno("mkdtemp " + path);
  ScopeGuard remove_on_error([&path] {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  });
  HUSK_TRY_ASSIGN(UniqueFd lock, take_lock(path));
  remove_on_error.dismiss();
  return PrivateDir(std::move(path), std::move(lock));
}

PrivateDir::~PrivateDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  // lock_ is closed after this body: the lock is held until the folder is gone.
}

PrivateDir::PrivateDir(PrivateDir&& other) noexcept
    : path_(std::exchange(other.path_, "")), lock_(std::move(other.lock_)) {}

}  // namespace husk
