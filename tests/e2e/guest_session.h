// GuestSession: boots the real guest through `husk boot` with a shell
// script as its init (rdinit=/bin/sh -- -c SCRIPT), so e2e tests can drive
// devices from inside the guest without the agent. The initramfs is the
// one `make guest` builds plus, when asked, an extra archive with the test
// tools (concatenated cpio archives are one initramfs to the kernel).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace husk::test {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

inline const std::string& husk_bin() {
  static const std::string path = env_or("HUSK_BIN", HUSK_BIN);
  return path;
}

// These run on helper threads too (std::async), where Catch2 may not
// assert: failures are exceptions, which reach the test's own thread.
inline std::string guest_file(const std::string& name) {
  const std::string path = env_or("HUSK_GUEST_DIR", HUSK_GUEST_DIR) + "/" + name;
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("missing " + path + " (the guest is built by `make guest`)");
  }
  return path;
}

inline int shell(const std::string& command) { return std::system(command.c_str()); }

// The guest initramfs with /bin/vsock_tool added, made once per TempDir.
inline std::string initrd_with_tools(const TempDir& dir) {
  const std::string out = dir.file("initrd-tools.gz");
  if (std::filesystem::exists(out)) return out;
  const std::string staging = dir.file("tools-root");
  std::filesystem::create_directories(staging + "/bin");
  std::filesystem::copy_file(HUSK_VSOCK_TOOL, staging + "/bin/vsock_tool");
  const std::string cmd = "cd '" + staging + "' && find . | cpio -o -H newc 2>/dev/null | gzip > '" +
                          dir.file("tools.cpio.gz") + "' && cat '" + guest_file("initramfs.cpio") +
                          "' '" + dir.file("tools.cpio.gz") + "' > '" + out + "'";
  if (shell(cmd) != 0) throw std::runtime_error("cannot build " + out);
  return out;
}

// Runs `script` as the guest's init (it must not contain double quotes);
// the guest resets when the script ends.
inline ProcessResult run_guest_script(const std::string& script, std::vector<std::string> extra,
                                      const std::string& initrd, double timeout_s = 180) {
  const std::string cmdline =
      "console=ttyS0 reboot=k panic=-1 quiet rdinit=/bin/sh -- -c \"mount -t devtmpfs d /dev; "
      "mount -t proc p /proc; mount -t sysfs s /sys; " + script + "; echo HUSK_SCRIPT_DONE; reboot -f\"";
  std::vector<std::string> args{husk_bin(), "boot", "--no-input", "--kernel", guest_file("vmlinux"),
                                "--initrd", initrd, "--cmdline", cmdline};
  args.insert(args.end(), extra.begin(), extra.end());
  ProcessResult r = run_process(args, timeout_s);
  // The guest's tty turns \n into \r\n; tests compare plain lines.
  std::erase(r.out, '\r');
  return r;
}

}  // namespace husk::test
