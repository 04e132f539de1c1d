#include "cli/guest_paths.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace husk::cli {

namespace {
std::string beside_binary(const char* env, const char* name) {
  if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::string("build/guest/") + name;
  return (self.parent_path().parent_path() / "guest" / name).string();
}
}  // namespace

std::string default_kernel_path() { return beside_binary("HUSK_KERNEL", "vmlinux"); }
std::string default_initrd_path() { return beside_binary("HUSK_INITRD", "initramfs.cpio"); }

}  // namespace husk::cli
