// PrivateDir: a fresh mode-0700 directory under $TMPDIR (or /tmp) for one
// VM's sockets and logs, removed with everything in it on destruction.
#pragma once

#include <string>

#include "runtime/common/result.h"

namespace husk {

class PrivateDir {
 public:
  static Result<PrivateDir> create(const std::string& prefix);
  ~PrivateDir();
  PrivateDir(PrivateDir&& other) noexcept;
  PrivateDir& operator=(PrivateDir&&) = delete;
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  explicit PrivateDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace husk
