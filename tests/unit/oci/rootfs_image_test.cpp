// The rootfs image cache: the content digest, and images built by the real
// mkfs.ext4 from real folders, read back with debugfs (no mounting).
#include "runtime/oci/rootfs_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace husk::oci {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

void write_file(const fs::path& path, const std::string& content, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << content;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// A small root file system: folders, files (one of 3 MiB), a symlink, a
// hard link, an empty file, a fifo.
void make_tree(const fs::path& root) {
  fs::create_directories(root / "etc");
  fs::create_directories(root / "bin");
  fs::create_directories(root / "var/empty");
  write_file(root / "etc/hostname", "husk\n");
  write_file(root / "etc/empty", "");
  write_file(root / "bin/tool", "#!/bin/sh\necho tool\n", 0755);
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 2654435761u >> 13);
  write_file(root / "bin/big", big);
  REQUIRE(::symlink("tool", (root / "bin/alias").c_str()) == 0);
  REQUIRE(::link((root / "bin/tool").c_str(), (root / "bin/tool2").c_str()) == 0);
  REQUIRE(::mkfifo((root / "var/fifo").c_str(), 0600) == 0);
}

std::string digest_of(const fs::path& root) {
  auto d = tree_digest(root.string());
  REQUIRE(d);
  return *d;
}

// debugfs's answer to one request on an image.
std::string debugfs(const std::string& image, const std::string& request) {
  test::ProcessResult r = test::run_process({"/usr/sbin/debugfs", "-R", request, image}, 60);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

std::vector<std::string> cache_files(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

size_t count_containing(const std::vector<std::string>& names, const std::string& part) {
  const auto has = [&](const std::string& n) { return n.find(part) != std::string::npos; };
  return static_cast<size_t>(std::count_if(names.begin(), names.end(), has));
}

void set_mtime(const std::string& path, time_t when) {
  const struct timespec times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

time_t mtime_of(const std::string& path) {
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mtim.tv_sec;
}

// Points $PATH elsewhere for the test's duration.
class PathOverride {
 public:
  explicit PathOverride(const std::string& path) {
    if (const char* old = std::getenv("PATH")) old_ = old;
    ::setenv("PATH", path.c_str(), 1);
  }
  ~PathOverride() { ::setenv("PATH", old_.c_str(), 1); }
  PathOverride(const PathOverride&) = delete;
  PathOverride& operator=(const PathOverride&) = delete;

 private:
  std::string old_;
};

TEST_CASE("tree_digest: two identical trees made separately have one digest", "[oci][rootfs-image]") {
  test::TempDir dir;
  make_tree(dir.path() / "a");
  ::usleep(20'000);
  make_tree(dir.path() / "b");
  // Other times and other inodes: neither is content.
  set_mtime((dir.path() / "b/etc/hostname").string(), 1'000'000);
  set_mtime((dir.path() / "b/bin").string(), 2'000'000);
  struct stat a{};
  struct stat b{};
  REQUIRE(::stat((dir.path() / "a/bin/tool").c_str(), &a) == 0);
  REQUIRE(::stat((dir.path() / "b/bin/tool").c_str(), &b) == 0);
  REQUIRE(a.st_ino != b.st_ino);

  const std::string first = digest_of(dir.path() / "a");
  CHECK(first.rfind("sha256:", 0) == 0);
  CHECK(first.size() == 7 + 64);
  CHECK(digest_of(dir.path() / "b") == first);
  CHECK(digest_of(dir.path() / "a") == first);
}

TEST_CASE("tree_digest changes with every part of the content", "[oci][rootfs-image]") {
  test::TempDir dir;
  const fs::path root = dir.path() / "root";
  make_tree(root);
  const std::string before = digest_of(root);

  SECTION("a file's bytes, same size") { write_file(root / "etc/hostname", "kusk\n"); }
  SECTION("a byte deep in the big file") {
    std::fstream f(root / "bin/big", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 << 20);
    f.put('\x7f');
  }
  SECTION("a mode") { REQUIRE(::chmod((root / "etc/hostname").c_str(), 0600) == 0); }
  SECTION("the setuid bit") { REQUIRE(::chmod((root / "bin/tool").c_str(), 04755) == 0); }
  SECTION("the sticky bit on a folder") { REQUIRE(::chmod((root / "var/empty").c_str(), 01777) == 0); }
  SECTION("the folder's own mode") { REQUIRE(::chmod(root.c_str(), 0700) == 0); }
  SECTION("a symlink's target") {
    fs::remove(root / "bin/alias");
    REQUIRE(::symlink("tool2", (root / "bin/alias").c_str()) == 0);
  }
  SECTION("a new empty file") { write_file(root / "var/empty/new", ""); }
  SECTION("a new empty folder") { fs::create_directory(root / "var/new"); }
  SECTION("a rename") { fs::rename(root / "etc/empty", root / "etc/empty2"); }
  SECTION("a hard link made a copy") {
    fs::remove(root / "bin/tool2");
    fs::copy_file(root / "bin/tool", root / "bin/tool2");
  }
  SECTION("an xattr") {
    // user.* xattrs need a file system that has them (tmpfs does since 6.6).
    if (::setxattr((root / "etc/hostname").c_str(), "user.husk", "1", 1, 0) != 0) {
      WARN("no user xattrs here: " << std::strerror(errno));
      return;
    }
  }
  SECTION("a uid (as root)") {
    if (::geteuid() != 0) return;
    REQUIRE(::chown((root / "etc/hostname").c_str(), 1234, 0) == 0);
  }
  SECTION("a gid (as root)") {
    if (::geteuid() != 0) return;
    REQUIRE(::lchown((root / "bin/alias").c_str(), 0, 99) == 0);
  }
  SECTION("device numbers (as root)") {
    if (::geteuid() != 0) return;
    REQUIRE(::mknod((root / "var/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
    const std::string one = digest_of(root);
    CHECK(one != before);
    fs::remove(root / "var/null");
    REQUIRE(::mknod((root / "var/null").c_str(), S_IFCHR | 0666, makedev(1, 5)) == 0);
    CHECK(digest_of(root) != one);
    return;
  }
  CHECK(digest_of(root) != before);
}

TEST_CASE("tree_digest: a missing folder or a file is an error naming it", "[oci][rootfs-image]") {
  test::TempDir dir;
  auto missing = tree_digest(dir.file("nope"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "rootfs folder " + dir.file("nope") + " does not exist");
  write_file(dir.path() / "plain", "x");
  auto file = tree_digest(dir.file("plain"));
  REQUIRE_FALSE(file);
  CHECK(file.error().message.find("is not a folder") != std::string::npos);

  test::TempDir cache;
  auto image = rootfs_image(dir.file("nope"), ImageCacheOptions{cache.file("images")});
  REQUIRE_FALSE(image);
  CHECK(image.error().message.find(dir.file("nope")) != std::string::npos);
}

TEST_CASE("rootfs_image builds once, then hits, and the image holds the tree", "[oci][rootfs-image]") {
  test::TempDir dir;
  const fs::path root = dir.path() / "root";
  make_tree(root);
  if (::geteuid() == 0) REQUIRE(::chown((root / "etc/hostname").c_str(), 1234, 5678) == 0);
  const ImageCacheOptions options{dir.file("cache/images")};

  auto first = rootfs_image(root.string(), options);
  REQUIRE(first);
  CHECK(first->built);
  CHECK(first->digest == digest_of(root));
  CHECK(first->path == options.dir + "/" + first->digest.substr(7) + ".ext4");
  INFO("hash " << first->hash_time.count() << " ms, build " << first->build_time.count() << " ms");
  struct stat st{};
  REQUIRE(::stat(options.dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(::stat(first->path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0444);
  CHECK(count_containing(cache_files(options.dir), ".tmp-") == 0);

  CHECK(debugfs(first->path, "cat /etc/hostname") == "husk\n");
  CHECK(debugfs(first->path, "cat /bin/tool") == "#!/bin/sh\necho tool\n");
  CHECK(debugfs(first->path, "stat /bin/alias").find("Fast link dest: \"tool\"") != std::string::npos);
  CHECK(debugfs(first->path, "stat /bin/big").find("Size: 3145728") != std::string::npos);
  const std::string bin = debugfs(first->path, "ls -p /bin");
  CHECK(bin.find("/100755/") != std::string::npos);
  const std::string etc = debugfs(first->path, "ls -p /etc");
  if (::geteuid() == 0) CHECK(etc.find("/100644/1234/5678/hostname/5/") != std::string::npos);
  CHECK(debugfs(first->path, "stat /bin/tool2").find("Links: 2") != std::string::npos);
  CHECK(debugfs(first->path, "stat /var/fifo").find("Type: FIFO") != std::string::npos);
  const std::string super = test::run_process({"/usr/sbin/dumpe2fs", "-h", first->path}, 60).out;
  CHECK(super.find("Filesystem volume name:   husk-root") != std::string::npos);
  CHECK(super.find("Reserved block count:     0") != std::string::npos);
  CHECK(super.find("Block size:               4096") != std::string::npos);

  set_mtime(first->path, 1'000'000);
  auto second = rootfs_image(root.string(), options);
  REQUIRE(second);
  CHECK_FALSE(second->built);
  CHECK(second->path == first->path);
  CHECK(second->build_time.count() == 0);
  CHECK(mtime_of(second->path) > 1'000'000);  // the LRU clock moved

  // The same tree made again elsewhere is the same content: the same image.
  make_tree(dir.path() / "copy");
  if (::geteuid() == 0) REQUIRE(::chown((dir.path() / "copy/etc/hostname").c_str(), 1234, 5678) == 0);
  auto third = rootfs_image((dir.path() / "copy").string(), options);
  REQUIRE(third);
  CHECK_FALSE(third->built);
  CHECK(third->path == first->path);
  CHECK(cache_files(options.dir).size() == 2);  // the image and its lock
}

TEST_CASE("rootfs_image: concurrent builders of one content make one image", "[oci][rootfs-image]") {
  test::TempDir dir;
  const fs::path root = dir.path() / "root";
  make_tree(root);
  const ImageCacheOptions options{dir.file("images")};

  // A second process and four threads, all at once.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto image = rootfs_image(root.string(), options);
    ::_exit(!image ? 1 : image->built ? 10 : 11);
  }
  std::atomic<int> ready{0};
  std::atomic<int> built{0};
  std::atomic<int> failed{0};
  std::vector<std::string> paths(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < paths.size(); ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (ready.load() < 4) std::this_thread::yield();
      auto image = rootfs_image(root.string(), options);
      if (!image) {
        ++failed;
        return;
      }
      if (image->built) ++built;
      paths[i] = image->path;
    });
  }
  for (std::thread& t : threads) t.join();
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  const int child_built = WEXITSTATUS(status) == 10 ? 1 : 0;
  CHECK(WEXITSTATUS(status) != 1);
  CHECK(failed == 0);
  CHECK(built + child_built == 1);
  for (const std::string& p : paths) CHECK(p == paths[0]);
  const std::vector<std::string> files = cache_files(options.dir);
  CHECK(count_containing(files, ".ext4") == 1);
  CHECK(count_containing(files, ".tmp-") == 0);
  CHECK(debugfs(paths[0], "cat /etc/hostname") == "husk\n");
}

TEST_CASE("rootfs_image evicts the least recently used images past max_bytes", "[oci][rootfs-image]") {
  test::TempDir dir;
  std::vector<std::string> trees;
  std::vector<std::string> images;
  ImageCacheOptions options{dir.file("images")};
  options.keep_recent = seconds(0);
  for (const char* name : {"a", "b", "c"}) {
    const fs::path root = dir.path() / name;
    fs::create_directories(root / "etc");
    write_file(root / "etc/name", name);
    auto image = rootfs_image(root.string(), options);
    REQUIRE(image);
    REQUIRE(image->built);
    trees.push_back(root.string());
    images.push_back(image->path);
  }
  const time_t now = ::time(nullptr);
  uint64_t total = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    set_mtime(images[i], now - 3000 + static_cast<time_t>(i) * 1000);  // a oldest, c newest
    struct stat st{};
    REQUIRE(::stat(images[i].c_str(), &st) == 0);
    total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  options.max_bytes = total - 1;  // one image has to go

  SECTION("the oldest goes, with its lock file") {
    REQUIRE(rootfs_image(trees[2], options));
    CHECK_FALSE(fs::exists(images[0]));
    CHECK_FALSE(fs::exists(images[0].substr(0, images[0].size() - 5) + ".lock"));
    CHECK(fs::exists(images[1]));
    CHECK(fs::exists(images[2]));
    // And comes back when asked for.
    options.max_bytes = 0;
    auto again = rootfs_image(trees[0], options);
    REQUIRE(again);
    CHECK(again->built);
  }
  SECTION("one held open is in use: the next oldest goes") {
    const int fd = ::open(images[0].c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(rootfs_image(trees[2], options));
    ::close(fd);
    CHECK(fs::exists(images[0]));
    CHECK_FALSE(fs::exists(images[1]));
    CHECK(fs::exists(images[2]));
  }
  SECTION("the one asked for stays even when it is the oldest") {
    REQUIRE(rootfs_image(trees[0], options));
    CHECK(fs::exists(images[0]));
    CHECK_FALSE(fs::exists(images[1]));
  }
  SECTION("recently used ones stay") {
    options.keep_recent = seconds(3600);
    REQUIRE(rootfs_image(trees[2], options));
    for (const std::string& image : images) CHECK(fs::exists(image));
  }
  SECTION("no limit, no eviction") {
    options.max_bytes = 0;
    REQUIRE(rootfs_image(trees[2], options));
    for (const std::string& image : images) CHECK(fs::exists(image));
  }
}

TEST_CASE("rootfs_image: mkfs's failure is an error with what it said", "[oci][rootfs-image]") {
  test::TempDir dir;
  const fs::path root = dir.path() / "root";
  make_tree(root);
  // A stand-in mkfs.ext4 first on PATH: the real one does not fail on a
  // readable tree when run as root.
  fs::create_directories(dir.path() / "bin");
  write_file(dir.path() / "bin/mkfs.ext4", "#!/bin/sh\necho \"mkfs.ext4: the disk caught fire\" >&2\nexit 1\n",
             0755);
  const ImageCacheOptions options{dir.file("images")};
  {
    PathOverride path(dir.file("bin"));
    auto image = rootfs_image(root.string(), options);
    REQUIRE_FALSE(image);
    CHECK(image.error().message.find("the disk caught fire") != std::string::npos);
    CHECK(image.error().message.find(root.string()) != std::string::npos);
  }
  const std::vector<std::string> files = cache_files(options.dir);
  CHECK(count_containing(files, ".ext4") == 0);
  CHECK(count_containing(files, ".tmp-") == 0);
  CHECK(count_containing(files, ".lock") == 0);
}

TEST_CASE("rootfs_image sweeps the temporary files of killed builders", "[oci][rootfs-image]") {
  test::TempDir dir;
  const fs::path root = dir.path() / "root";
  make_tree(root);
  fs::create_directories(dir.path() / "other");
  write_file(dir.path() / "other/f", "other");
  ImageCacheOptions options{dir.file("images")};
  const std::string hex = digest_of(root).substr(7);
  const std::string other_hex = digest_of(dir.path() / "other").substr(7);
  fs::create_directories(options.dir);
  write_file(options.dir + "/" + hex + ".tmp-99999", "half an image");
  write_file(options.dir + "/" + other_hex + ".tmp-99998", "half another");

  // Its own digest's, when it builds.
  auto image = rootfs_image(root.string(), options);
  REQUIRE(image);
  CHECK(image->built);
  CHECK_FALSE(fs::exists(options.dir + "/" + hex + ".tmp-99999"));
  CHECK(fs::exists(options.dir + "/" + other_hex + ".tmp-99998"));
  // Any other's, when it evicts (and the lock file it took is not left).
  options.max_bytes = uint64_t{1} << 40;
  REQUIRE(rootfs_image(root.string(), options));
  CHECK_FALSE(fs::exists(options.dir + "/" + other_hex + ".tmp-99998"));
  CHECK_FALSE(fs::exists(options.dir + "/" + other_hex + ".lock"));
  CHECK(cache_files(options.dir) == std::vector<std::string>{hex + ".ext4", hex + ".lock"});
}

// A busybox root file system: one binary and a symlink per applet.
void make_busybox_tree(const fs::path& root) {
  fs::create_directories(root / "bin");
  fs::create_directories(root / "etc");
  fs::copy_file("/usr/bin/busybox", root / "bin/busybox");
  test::ProcessResult list = test::run_process({"/usr/bin/busybox", "--list"}, 30);
  REQUIRE(list.exit_code == 0);
  size_t at = 0;
  while (at < list.out.size()) {
    const size_t end = list.out.find('\n', at);
    const std::string applet = list.out.substr(at, end - at);
    if (!applet.empty() && applet != "busybox") {
      REQUIRE(::symlink("busybox", (root / "bin" / applet).c_str()) == 0);
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  write_file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
}

TEST_CASE("rootfs_image of a busybox tree", "[oci][rootfs-image]") {
  if (!fs::exists("/usr/bin/busybox")) {
    WARN("no /usr/bin/busybox (Debian package busybox): skipped");
    return;
  }
  test::TempDir dir;
  make_busybox_tree(dir.path() / "root");
  auto image = rootfs_image((dir.path() / "root").string(), ImageCacheOptions{dir.file("images")});
  REQUIRE(image);
  INFO("busybox tree: hash " << image->hash_time.count() << " ms, build " << image->build_time.count() << " ms");
  CHECK(image->built);
  CHECK(debugfs(image->path, "stat /bin/sh").find("Fast link dest: \"busybox\"") != std::string::npos);
  CHECK(debugfs(image->path, "cat /etc/passwd") == "root:x:0:0:root:/root:/bin/sh\n");
}

// The cost, printed: `husk-unit-tests "[.bench]"`.
TEST_CASE("rootfs_image timings", "[.bench][oci][rootfs-image]") {
  test::TempDir dir;
  std::vector<std::pair<std::string, std::string>> trees;
  if (fs::exists("/usr/bin/busybox")) {
    make_busybox_tree(dir.path() / "busybox");
    trees.emplace_back("busybox", (dir.path() / "busybox").string());
  }
  for (const char* big : {"/usr/lib/python3", "/usr/include"}) {
    if (fs::is_directory(big)) trees.emplace_back(big, big);
  }
  for (const auto& [name, path] : trees) {
    auto image = rootfs_image(path, ImageCacheOptions{dir.file("images")});
    REQUIRE(image);
    auto hit = rootfs_image(path, ImageCacheOptions{dir.file("images")});
    REQUIRE(hit);
    struct stat st{};
    REQUIRE(::stat(image->path.c_str(), &st) == 0);
    WARN(name << ": hash " << image->hash_time.count() << " ms, build " << image->build_time.count()
              << " ms, image " << (st.st_size >> 20) << " MiB (" << (st.st_blocks * 512 >> 20)
              << " MiB allocated); hit: " << hit->hash_time.count() << " ms");
    CHECK_FALSE(hit->built);
  }
}

}  // namespace
}  // namespace husk::oci
