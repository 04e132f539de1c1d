// Small text files of the kernel's interfaces, for the jail (sys_files.h).
#include "runtime/jail/sys_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <sstream>

#include "runtime/common/file.h"
#include "runtime/common/unique_fd.h"

namespace husk::jail {

Result<std::string> read_small_file(const std::string& path) {
  return read_text_file(path, uint64_t{1} << 20);
}

Result<void> write_file(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return fail_errno("write " + value + " to " + path);
  ssize_t n = 0;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("write " + value + " to " + path);
  if (static_cast<size_t>(n) != value.size()) return fail("write " + value + " to " + path + ": short write");
  return {};
}

bool has_word(const std::string& list, const std::string& word) {
  std::istringstream in(list);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

}  // namespace husk::jail
