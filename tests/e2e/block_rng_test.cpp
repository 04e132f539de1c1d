// End-to-end: virtio-blk in its three modes and virtio-rng, driven from
// inside the real guest.
#include <fstream>
#include <regex>

#include "tests/e2e/guest_session.h"

using namespace husk::test;

namespace {

std::string sha256(const std::string& path) {
  auto r = run_process({"sha256sum", path}, 60);
  REQUIRE(r.exit_code == 0);
  return r.out.substr(0, 64);
}

// An ext4 image of `size_mib` holding known.txt, made without root tricks
// (mkfs.ext4 -d).
std::string make_ext4(const TempDir& dir, const std::string& name, int size_mib) {
  const std::string tree = dir.file(name + "-tree");
  std::filesystem::create_directories(tree);
  std::ofstream(tree + "/known.txt") << "the quick brown fox\n";
  const std::string image = dir.file(name);
  REQUIRE(shell("mkfs.ext4 -q -F -d '" + tree + "' '" + image + "' " + std::to_string(size_mib) + "M") == 0);
  return image;
}

std::string host_read_ext4(const std::string& image, const std::string& path) {
  auto r = run_process({"debugfs", "-R", "cat " + path, image}, 60);
  return r.out;
}

}  // namespace

TEST_CASE("the guest reads a known file from a read-only ext4 disk and cannot write it", "[e2e]") {
  TempDir dir;
  const std::string image = make_ext4(dir, "ro.img", 8);
  const std::string before = sha256(image);
  auto r = run_guest_script(
      "mkdir /m; mount -o ro /dev/vda /m && cat /m/known.txt; "
      "if dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null; then echo RO_WRITE_OK; "
      "else echo RO_WRITE_REFUSED; fi",
      {"--disk", image + ",ro"}, guest_file("initramfs.cpio"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("the quick brown fox") != std::string::npos);
  CHECK(r.out.find("RO_WRITE_REFUSED") != std::string::npos);
  CHECK(sha256(image) == before);
}

TEST_CASE("a copy-on-write disk takes writes and leaves its file untouched", "[e2e]") {
  TempDir dir;
  const std::string image = make_ext4(dir, "cow.img", 16);
  const std::string before = sha256(image);
  auto r = run_guest_script(
      "mkdir /m; mount /dev/vda /m && dd if=/dev/urandom of=/m/big bs=1024 count=2048 2>/dev/null; "
      "echo cow-data > /m/new.txt; sync; echo 3 > /proc/sys/vm/drop_caches; "
      "cat /m/new.txt; umount /m; mount /dev/vda /m && cat /m/new.txt /m/known.txt",
      {"--disk", image + ",cow"}, guest_file("initramfs.cpio"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  // Read back after a remount: the data came from the overlay.
  size_t first = r.out.find("cow-data");
  REQUIRE(first != std::string::npos);
  CHECK(r.out.find("cow-data", first + 1) != std::string::npos);
  CHECK(r.out.find("the quick brown fox") != std::string::npos);
  CHECK(sha256(image) == before);
  CHECK(host_read_ext4(image, "/new.txt").find("cow-data") == std::string::npos);
}

TEST_CASE("a persistent disk keeps what the guest wrote", "[e2e]") {
  TempDir dir;
  const std::string image = make_ext4(dir, "rw.img", 16);
  auto r = run_guest_script("mkdir /m; mount /dev/vda /m && echo persisted-$((6*7)) > /m/out.txt; umount /m",
                            {"--disk", image + ",rw"}, guest_file("initramfs.cpio"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(host_read_ext4(image, "/out.txt") == "persisted-42\n");
}

TEST_CASE("several disks appear in order as vda, vdb, vdc", "[e2e]") {
  TempDir dir;
  const std::string a = make_ext4(dir, "a.img", 8);
  const std::string b = make_ext4(dir, "b.img", 12);
  const std::string c = make_ext4(dir, "c.img", 16);
  auto r = run_guest_script("cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vdc/size",
                            {"--disk", a + ",ro", "--disk", b + ",cow", "--disk", c + ",rw"},
                            guest_file("initramfs.cpio"));
  INFO(r.out << r.err);
  CHECK(r.out.find("16384\n24576\n32768\n") != std::string::npos);
}

TEST_CASE("the guest reads entropy from /dev/hwrng", "[e2e]") {
  auto r = run_guest_script(
      "cat /sys/class/misc/hw_random/rng_current; head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo; "
      "head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \\n'; echo",
      {"--rng"}, guest_file("initramfs.cpio"));
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("virtio_rng") != std::string::npos);
  std::smatch m;
  std::string out = r.out;
  std::regex hex(R"(\n([0-9a-f]{64})\n([0-9a-f]{64})\n)");
  REQUIRE(std::regex_search(out, m, hex));
  CHECK(m[1].str() != m[2].str());
  CHECK(m[1].str() != std::string(64, '0'));
}
