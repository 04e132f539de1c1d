#include "runtime/common/private_dir.h"

#include <cstdlib>
#include <filesystem>
#include <utility>

namespace husk {

Result<PrivateDir> PrivateDir::create(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return fail_errno("mkdtemp " + tmpl);
  return PrivateDir(tmpl);
}

PrivateDir::~PrivateDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

PrivateDir::PrivateDir(PrivateDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

}  // namespace husk
