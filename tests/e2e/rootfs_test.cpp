// End-to-end: the guest switches its root to a virtio-blk disk
// (husk.root=/dev/vdX, rootfs/initramfs/init) and runs commands there through
// `husk exec`. The root is a small ext4 image that rootfs/disk/mkext4 builds
// from a folder (busybox-static and a marker file), so these stay fast.
// The Debian image (`make guest-rootfs-debian`) is only used by the hidden
// "[.debian]" test: run it with `husk-e2e-tests "[debian]"`.
#include <filesystem>
#include <fstream>

#include "tests/e2e/guest_session.h"

using namespace husk::test;

namespace {

const char* const kCmdline = "console=ttyS0 reboot=k panic=-1 quiet";

// The repository: HUSK_SOURCE_DIR, else three levels above this file.
std::string source_dir() {
  return env_or("HUSK_SOURCE_DIR", std::filesystem::path(__FILE__).parent_path().parent_path().parent_path());
}

std::string sha256(const std::string& path) {
  auto r = run_process({"sha256sum", path}, 60);
  REQUIRE(r.exit_code == 0);
  return r.out.substr(0, 64);
}

std::string debugfs_cat(const std::string& image, const std::string& path) {
  return run_process({"debugfs", "-R", "cat " + path, image}, 60).out;
}

// A root file system folder: busybox-static with the applets the tests use,
// and /etc/husk-marker. No agent: the initramfs provides it.
std::string make_root_image(const TempDir& dir, const std::string& marker) {
  const std::string tree = dir.file("root");
  std::filesystem::create_directories(tree + "/bin");
  std::filesystem::create_directories(tree + "/etc");
  std::filesystem::copy_file(env_or("HUSK_BUSYBOX", "/bin/busybox"), tree + "/bin/busybox");
  for (const char* applet : {"sh", "cat", "echo", "ls", "test", "grep"}) {
    std::filesystem::create_symlink("busybox", tree + "/bin/" + applet);
  }
  std::ofstream(tree + "/etc/husk-marker") << marker << "\n";
  const std::string image = dir.file("root.ext4");
  auto r = run_process({source_dir() + "/rootfs/disk/mkext4", image, tree}, 120);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  return image;
}

ProcessResult exec_in_root(const std::string& disk, const std::string& root_args,
                           const std::vector<std::string>& command) {
  std::vector<std::string> args{husk_bin(),  "exec",   "--kernel", guest_file("vmlinux"), "--initrd",
                                guest_file("initramfs.cpio"), "--disk", disk, "--cmdline",
                                std::string(kCmdline) + " " + root_args, "--"};
  args.insert(args.end(), command.begin(), command.end());
  ProcessResult r = run_process(args, 300);
  std::erase(r.out, '\r');
  return r;
}

}  // namespace

TEST_CASE("mkext4 builds an image from a folder and refuses bad input clearly", "[e2e]") {
  TempDir dir;
  const std::string image = make_root_image(dir, "mkext4-check");
  CHECK(debugfs_cat(image, "/etc/husk-marker") == "mkext4-check\n");
  const std::string mkext4 = source_dir() + "/rootfs/disk/mkext4";
  auto missing = run_process({mkext4, dir.file("x.ext4"), dir.file("no-such-folder")}, 60);
  CHECK(missing.exit_code != 0);
  CHECK(missing.err.find("does not exist") != std::string::npos);
  auto too_small = run_process({mkext4, dir.file("x.ext4"), dir.file("root"), "1"}, 60);
  CHECK(too_small.exit_code != 0);
  CHECK(too_small.err.find("does not fit") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("x.ext4")));
}

TEST_CASE("husk.root= switches to an ext4 root; the job's writes never reach the disk", "[e2e]") {
  TempDir dir;
  const std::string image = make_root_image(dir, "marker-from-the-disk-root");
  const std::string before = sha256(image);
  // The disk is attached writable: only the read-only mount and the tmpfs
  // overlay of /init keep it unchanged.
  auto r = exec_in_root(image + ",rw", "husk.root=/dev/vda",
                        {"/bin/sh", "-c",
                         "cat /etc/husk-marker; echo overwritten > /etc/husk-marker; echo new > /new-file; "
                         "cat /etc/husk-marker /new-file; test -e /init && echo INITRAMFS_VISIBLE; "
                         "grep ' / ' /proc/mounts"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("marker-from-the-disk-root\noverwritten\nnew\n") != std::string::npos);
  // The initramfs is gone: the command ran in the disk's root.
  CHECK(r.out.find("INITRAMFS_VISIBLE") == std::string::npos);
  CHECK(r.out.find(" / overlay ") != std::string::npos);
  CHECK(sha256(image) == before);
  CHECK(debugfs_cat(image, "/etc/husk-marker") == "marker-from-the-disk-root\n");
}

TEST_CASE("husk.rootflags=rw uses the disk read-write without an overlay", "[e2e]") {
  TempDir dir;
  const std::string image = make_root_image(dir, "rw-root");
  auto r = exec_in_root(image + ",rw", "husk.root=/dev/vda husk.rootflags=rw",
                        {"/bin/sh", "-c", "echo kept-$((6*7)) > /etc/husk-out; grep ' / ' /proc/mounts"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(" / ext4 rw") != std::string::npos);
  // The guest did not unmount: replay the journal on a copy before reading.
  const std::string copy = dir.file("copy.ext4");
  std::filesystem::copy_file(image, copy);
  run_process({"e2fsck", "-fy", copy}, 120);
  CHECK(debugfs_cat(copy, "/etc/husk-out") == "kept-42\n");
  // /init put the agent into the root that lacked one.
  CHECK(run_process({"debugfs", "-R", "stat /sbin/husk-agent", copy}, 60).out.find("Type: regular") !=
        std::string::npos);
}

TEST_CASE("a husk.root= that names no disk fails the boot", "[e2e]") {
  TempDir dir;
  const std::string image = make_root_image(dir, "unused");
  std::vector<std::string> args{husk_bin(), "boot", "--no-input", "--kernel", guest_file("vmlinux"),
                                "--initrd", guest_file("initramfs.cpio"), "--disk", image + ",ro",
                                "--cmdline", std::string(kCmdline) + " husk.root=/dev/vdb"};
  ProcessResult r = run_process(args, 300);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);  // the guest failed: init exited, the kernel panicked
  CHECK(r.out.find("HUSK_ROOT_FAILED /dev/vdb is not a block device") != std::string::npos);
  CHECK(r.out.find("HUSK_READY") == std::string::npos);
}

TEST_CASE("the Debian image runs python3 and gcc", "[e2e][.debian]") {
  const std::string image = env_or("HUSK_DEBIAN_IMAGE", env_or("HUSK_GUEST_DIR", HUSK_GUEST_DIR) + "/debian.ext4");
  INFO("the Debian image is built by `make guest-rootfs-debian`: " << image);
  REQUIRE(std::filesystem::exists(image));
  const std::string before = sha256(image);
  auto r = exec_in_root(image + ",ro", "husk.root=/dev/vda",
                        {"/bin/sh", "-c",
                         "python3 -c 'print(6*7)' && "
                         "printf '#include <stdio.h>\\nint main(void){puts(\"compiled-ok\");return 0;}\\n' > /tmp/t.c && "
                         "gcc -O2 -o /tmp/t /tmp/t.c && /tmp/t && . /etc/os-release && echo \"$ID $VERSION_ID\""});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("42\n") != std::string::npos);
  CHECK(r.out.find("compiled-ok\n") != std::string::npos);
  CHECK(r.out.find("debian 12\n") != std::string::npos);
  CHECK(sha256(image) == before);
}
