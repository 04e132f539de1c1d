// PrivateDir: a fresh mode-0700 directory under $TMPDIR (or /tmp) for one
// VM's sockets and logs, removed with everything in it on destruction.
//
// A SIGKILLed owner never runs its destructor, so each folder carries a lock
// that dies with its owner: `<dir>/.lock`, held with flock(LOCK_EX) on a
// close-on-exec descriptor for the object's whole life. flock locks belong to
// the open file description, so two PrivateDirs in one process exclude each
// other too (POSIX record locks would not). create() first sweeps the
// `<prefix>-XXXXXX` folders of dead owners: see remove_stale.
#pragma once

#include <string>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk {

class PrivateDir {
 public:
  // Sweeps stale folders of this prefix (never fatal), then makes a new one.
  static Result<PrivateDir> create(const std::string& prefix);

  // Removes the `<parent>/<prefix>-XXXXXX` folders that belong to this user
  // and whose owner is gone: their `.lock` can be taken, or they have none
  // and were last modified over a minute ago (older husk, or a crash before
  // the lock existed). Never follows symlinks, never touches anything that
  // is not a directory of ours, and is bounded (folders and entries per
  // call; a folder cut short keeps its lock and is finished next time).
  // Failures are logged at debug level and skipped. Returns how many
  // folders it removed.
  static int remove_stale(const std::string& parent, const std::string& prefix);

  ~PrivateDir();
  PrivateDir(PrivateDir&& other) noexcept;
  PrivateDir& operator=(PrivateDir&&) = delete;
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  PrivateDir(std::string path, UniqueFd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  std::string path_;
  UniqueFd lock_;  // the flock on `<path_>/.lock`; released after the folder is gone
};

}  // namespace husk
