// The agent's resolver files for ConfigureNetwork (guest-agent/src/
// etc_files.h), written into a temporary folder standing for /etc:
// resolv.conf replaced whole, hosts keeping its own lines with the host's
// entries in one block, both the same after a second configuration.
#include "guest-agent/src/etc_files.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"

namespace husk::guest {
namespace {

namespace proto = agent::proto;

std::string slurp(const std::string& path) {
  std::string out;
  REQUIRE(read_etc_file(path, out) == 0);
  return out;
}

proto::ConfigureNetwork config(std::vector<std::string> nameservers, std::vector<proto::HostEntry> hosts) {
  proto::ConfigureNetwork m;
  m.nameservers = std::move(nameservers);
  m.hosts = std::move(hosts);
  return m;
}

const std::string kBlockStart = std::string(kHostsBegin) + "\n";
const std::string kBlockEnd = std::string(kHostsEnd) + "\n";

TEST_CASE("etc files: resolv.conf lists the nameservers, or none", "[unit][agent]") {
  CHECK(resolv_conf_text({"10.0.2.3", "1.1.1.1"}) ==
        "# Written by husk-agent.\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n");
  const std::string none = resolv_conf_text({});
  CHECK(none.find("nameserver ") == std::string::npos);
  CHECK(none.find("/etc/hosts only") != std::string::npos);
}

TEST_CASE("etc files: hosts keeps its own lines and replaces the block of an earlier configuration",
          "[unit][agent]") {
  const std::vector<proto::HostEntry> entries = {{"10.0.2.2", "host.husk.internal"}, {"10.0.2.15", "box"}};
  const std::string block = kBlockStart + "10.0.2.2\thost.husk.internal\n10.0.2.15\tbox\n" + kBlockEnd;
  const std::string image = "127.0.0.1\tlocalhost\n127.0.1.1\thusk\n";

  CHECK(hosts_text(image, entries) == image + block);
  CHECK(hosts_text(hosts_text(image, entries), entries) == image + block);
  // A different configuration replaces the block; none removes it.
  CHECK(hosts_text(image + block, {{"192.168.1.1", "gw"}}) ==
        image + kBlockStart + "192.168.1.1\tgw\n" + kBlockEnd);
  CHECK(hosts_text(image + block, {}) == image);
  // Lines after the block (a job's own) stay; a file without a final newline gets one.
  CHECK(hosts_text(image + block + "1.2.3.4 mine", {}) == image + "1.2.3.4 mine\n");
  // Missing or empty: a localhost line first.
  CHECK(hosts_text("", entries) == "127.0.0.1\tlocalhost\n" + block);
  CHECK(hosts_text("\n \n", {}) == "127.0.0.1\tlocalhost\n");
  // An unterminated block (cut short) is dropped to its end.
  CHECK(hosts_text(image + kBlockStart + "6.6.6.6 x\n", {}) == image);
}

TEST_CASE("etc files: written into the folder, the hosts file's own lines kept, twice the same",
          "[unit][agent]") {
  test::TempDir dir;
  const std::string etc = dir.file("etc");
  const std::string fallback = dir.file("run/husk/etc");
  REQUIRE(::mkdir(etc.c_str(), 0755) == 0);
  const std::string image = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";
  REQUIRE(put_file(etc + "/hosts", image) == 0);
  REQUIRE(put_file(etc + "/resolv.conf", "nameserver 8.8.8.8\n") == 0);

  const auto m = config({"10.0.2.3"}, {{"10.0.2.2", "host.husk.internal"}});
  for (int round = 0; round < 2; ++round) {
    const StepError e = write_resolver_files(etc, fallback, m);
    INFO(e.step);
    REQUIRE(e.err == 0);
    CHECK(slurp(etc + "/resolv.conf") == "# Written by husk-agent.\nnameserver 10.0.2.3\n");
    CHECK(slurp(etc + "/hosts") == image + kBlockStart + "10.0.2.2\thost.husk.internal\n" + kBlockEnd);
  }
  struct stat st {};
  REQUIRE(::stat((etc + "/resolv.conf").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  // No temporary files left, nothing under the read-only fallback.
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(etc)) ++files;
  CHECK(files == 2);
  CHECK_FALSE(std::filesystem::exists(fallback));

  // No nameservers: no old one survives.
  REQUIRE(write_resolver_files(etc, fallback, config({}, {})).err == 0);
  CHECK(slurp(etc + "/resolv.conf").find("\nnameserver ") == std::string::npos);
  CHECK(slurp(etc + "/hosts") == image);
}

TEST_CASE("etc files: a guest without /etc or /etc/hosts gets both", "[unit][agent]") {
  test::TempDir dir;
  const std::string etc = dir.file("etc");
  const auto m = config({}, {{"10.0.2.2", "host.husk.internal"}});
  REQUIRE(write_resolver_files(etc, dir.file("fallback"), m).err == 0);
  REQUIRE(write_resolver_files(etc, dir.file("fallback"), m).err == 0);
  CHECK(slurp(etc + "/hosts") == "127.0.0.1\tlocalhost\n" + kBlockStart + "10.0.2.2\thost.husk.internal\n" + kBlockEnd);
}

TEST_CASE("etc files: a failing step names itself", "[unit][agent]") {
  test::TempDir dir;
  // /etc's parent is missing: mkdir fails with ENOENT (not EROFS, so no fallback).
  const StepError e = write_resolver_files(dir.file("no/such/etc"), dir.file("fallback"), config({}, {}));
  CHECK(e.err == ENOENT);
  CHECK(e.step == "mkdir " + dir.file("no/such/etc"));
  CHECK(e.message() == "mkdir " + dir.file("no/such/etc") + ": No such file or directory");
}

}  // namespace
}  // namespace husk::guest
