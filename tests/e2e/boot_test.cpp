// End-to-end: husk boots the real guest kernel (build/guest/vmlinux, made by
// `make guest`) with its initramfs. These run where /dev/kvm can run Linux:
// directly, or inside the nested test host (tests/e2e/launch decides).
#include <cstdlib>
#include <filesystem>
#include <regex>

#include <catch2/catch.hpp>

#include "tests/support/subprocess.h"

using husk::test::run_process;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

const std::string kHusk = env_or("HUSK_BIN", HUSK_BIN);
const std::string kGuestDir = env_or("HUSK_GUEST_DIR", HUSK_GUEST_DIR);

std::string guest_file(const std::string& name) {
  const std::string path = kGuestDir + "/" + name;
  INFO("the guest is built by `make guest`");
  REQUIRE(std::filesystem::exists(path));
  return path;
}

husk::test::ProcessResult boot(const std::string& kernel, const std::vector<std::string>& extra,
                               const std::string& cmdline = "console=ttyS0 reboot=k panic=-1") {
  std::vector<std::string> args{kHusk, "boot", "--no-input", "--kernel", kernel, "--initrd",
                                guest_file("initramfs.cpio"), "--cmdline", cmdline};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_process(args, 180);
}

// The marker line's fields, or empty when it is missing.
std::smatch marker(const std::string& out, std::string& storage) {
  storage = out;
  std::smatch m;
  std::regex_search(storage, m, std::regex(R"(HUSK_READY uptime=([0-9.]+) cpus=([0-9]+))"));
  return m;
}

}  // namespace

TEST_CASE("the real guest boots to its init and resets, with 1 and 2 vCPUs", "[e2e]") {
  const std::string kernel = guest_file("vmlinux");
  for (const char* vcpus : {"1", "2"}) {
    auto r = boot(kernel, {"--vcpus", vcpus, "--memory", "256"});
    INFO("vcpus " << vcpus << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    std::string s;
    auto m = marker(r.out, s);
    REQUIRE(m.size() == 3);
    CHECK(m[2].str() == vcpus);  // the guest counts the CPUs it brought up
    CHECK(r.err.find("i8042") != std::string::npos);
  }
}

TEST_CASE("the real guest boots as a bzImage too", "[e2e]") {
  const std::string bzimage = kGuestDir + "/bzImage";
  if (!std::filesystem::exists(bzimage)) {
    FAIL("no bzImage next to the vmlinux: `make guest` builds both");
  }
  auto r = boot(bzimage, {"--vcpus", "2"});
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.exit_code == 0);
  std::string s;
  auto m = marker(r.out, s);
  REQUIRE(m.size() == 3);
  CHECK(m[2].str() == "2");
}

TEST_CASE("a guest kernel panic is a failure that quotes the panic line", "[e2e]") {
  auto r = boot(guest_file("vmlinux"), {}, "console=ttyS0 reboot=k panic=-1 husk.test=panic");
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("HUSK_PANIC") != std::string::npos);
  CHECK(r.err.find("guest-panic") != std::string::npos);
  CHECK(r.err.find("Kernel panic - not syncing: Attempted to kill init!") != std::string::npos);
}

TEST_CASE("the guest sees the memory it was given", "[e2e]") {
  auto r = boot(guest_file("vmlinux"), {"--memory", "512"},
                "console=ttyS0 reboot=k panic=-1");
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.exit_code == 0);
  // The kernel logs the e820 map husk wrote; usable RAM must end at 512 MiB.
  CHECK(r.out.find("BIOS-e820: [mem 0x0000000000100000-0x000000001fffffff] usable") !=
        std::string::npos);
}
