// PrivateDir: the folder, its lock, and the sweep of folders whose owner was
// SIGKILLed, with real folders and real processes.
#include "runtime/common/private_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"

namespace husk {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPrefix = "husk-vm";

// Points $TMPDIR at `dir` for the test's duration.
class TmpdirOverride {
 public:
  explicit TmpdirOverride(const std::string& dir) {
    if (const char* old = std::getenv("TMPDIR")) old_ = old;
    ::setenv("TMPDIR", dir.c_str(), 1);
  }
  ~TmpdirOverride() {
    if (old_.empty()) {
      ::unsetenv("TMPDIR");
    } else {
      ::setenv("TMPDIR", old_.c_str(), 1);
    }
  }
  TmpdirOverride(const TmpdirOverride&) = delete;
  TmpdirOverride& operator=(const TmpdirOverride&) = delete;

 private:
  std::string old_;
};

// A child process that owns a PrivateDir in $TMPDIR until it is killed or
// released (the parent closes its end of a pipe, or exits).
class Owner {
 public:
  Owner() {
    int to_parent[2];
    int to_child[2];
    REQUIRE(::pipe2(to_parent, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(to_child, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(to_parent[0]);
      ::close(to_child[1]);
      int status = 0;
      {
        auto dir = PrivateDir::create(kPrefix);
        const std::string line = (dir ? dir->path() : std::string()) + "\n";
        status = dir && ::write(to_parent[1], line.data(), line.size()) == static_cast<ssize_t>(line.size()) ? 0 : 1;
        char byte = 0;
        while (status == 0 && ::read(to_child[0], &byte, 1) != 0) {
        }
      }
      ::_exit(status);
    }
    ::close(to_parent[1]);
    ::close(to_child[0]);
    release_fd_ = to_child[1];
    char c = 0;
    while (::read(to_parent[0], &c, 1) == 1 && c != '\n') path_ += c;
    ::close(to_parent[0]);
    REQUIRE(!path_.empty());
  }
  ~Owner() {
    if (release_fd_ >= 0) ::close(release_fd_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;

  void kill9() {
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    CHECK(WIFSIGNALED(status));
    pid_ = -1;
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  pid_t pid_ = -1;
  int release_fd_ = -1;
  std::string path_;
};

// Sets a path's mtime `seconds` into the past (without following symlinks).
void age(const std::string& path, time_t seconds) {
  const timespec then{std::time(nullptr) - seconds, 0};
  const timespec times[2] = {then, then};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

void touch(const std::string& path) { std::ofstream(path) << "x"; }

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::symlink_status(path, ec).type() != fs::file_type::not_found;
}

TEST_CASE("PrivateDir is a 0700 folder holding its lock, removed on destruction", "[common][private_dir]") {
  test::TempDir tmp;
  TmpdirOverride env(tmp.path());
  std::string path;
  {
    auto dir = PrivateDir::create(kPrefix);
    REQUIRE(dir);
    path = dir->path();
    CHECK(fs::path(path).parent_path() == tmp.path());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0700);
    CHECK_FALSE(exists(dir->file(".lock-new")));
    // Another open file description cannot take the lock: it is held.
    const int fd = ::open(dir->file(".lock").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(::flock(fd, LOCK_EX | LOCK_NB) == -1);
    CHECK(errno == EWOULDBLOCK);
    // A move carries the lock; the moved-from object removes nothing.
    PrivateDir moved(std::move(*dir));
    dir = tl::unexpected(Error{});
    CHECK(exists(path));
    CHECK(::flock(fd, LOCK_EX | LOCK_NB) == -1);
    // A sweep from this very process treats it as live as well.
    age(path, 3600);
    CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 0);
    CHECK(exists(moved.file(".lock")));
    ::close(fd);
  }
  CHECK_FALSE(exists(path));
}

TEST_CASE("the next create removes the folder of a SIGKILLed owner", "[common][private_dir]") {
  test::TempDir tmp;
  TmpdirOverride env(tmp.path());
  Owner owner;
  touch(owner.path() + "/console.log");
  fs::create_directory(owner.path() + "/sub");
  touch(owner.path() + "/sub/file");
  owner.kill9();
  REQUIRE(exists(owner.path()));

  auto dir = PrivateDir::create(kPrefix);
  REQUIRE(dir);
  CHECK_FALSE(exists(owner.path()));
  CHECK(exists(dir->path()));
}

TEST_CASE("a live owner's folder is never swept, however old", "[common][private_dir]") {
  test::TempDir tmp;
  TmpdirOverride env(tmp.path());
  Owner owner;
  touch(owner.path() + "/console.log");
  age(owner.path(), 3600);
  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 0);
  auto dir = PrivateDir::create(kPrefix);
  REQUIRE(dir);
  CHECK(exists(owner.path() + "/console.log"));
  CHECK(exists(owner.path() + "/.lock"));

  owner.kill9();
  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 1);
  CHECK_FALSE(exists(owner.path()));
  CHECK(exists(dir->path()));
}

TEST_CASE("a folder without a lock is in use while young, stale once old", "[common][private_dir]") {
  test::TempDir tmp;
  const std::string folder = tmp.file("husk-vm-Ab3xYz");
  fs::create_directory(folder);
  touch(folder + "/vsock.sock");
  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 0);
  CHECK(exists(folder + "/vsock.sock"));
  age(folder, 120);
  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 1);
  CHECK_FALSE(exists(folder));
}

TEST_CASE("the sweep leaves other prefixes, files and symlinks alone", "[common][private_dir]") {
  test::TempDir tmp;
  test::TempDir outside;
  touch(outside.file("precious"));
  age(outside.path(), 3600);
  const std::vector<std::string> others = {
      tmp.file("husk-vmx-abcdef"),      // another prefix
      tmp.file("husk-vm-abcdefg"),      // longer than mkdtemp's suffix
      tmp.file("husk-vm-abc-de"),       // not mkdtemp's alphabet
      tmp.file("husk-vm-extra-abcdef"), // a longer prefix that starts like ours
  };
  for (const std::string& dir : others) {
    fs::create_directory(dir);
    age(dir, 3600);
  }
  touch(tmp.file("husk-vm-FILE00"));
  fs::create_directory_symlink(outside.path(), tmp.file("husk-vm-LINK00"));
  age(tmp.file("husk-vm-LINK00"), 3600);

  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 0);
  for (const std::string& dir : others) CHECK(exists(dir));
  CHECK(exists(tmp.file("husk-vm-FILE00")));
  CHECK(exists(tmp.file("husk-vm-LINK00")));
  CHECK(exists(outside.file("precious")));
}

TEST_CASE("removing a stale folder does not follow the symlinks inside it", "[common][private_dir]") {
  test::TempDir tmp;
  test::TempDir outside;
  touch(outside.file("precious"));
  const std::string folder = tmp.file("husk-vm-000000");
  fs::create_directory(folder);
  fs::create_directory_symlink(outside.path(), folder + "/dir-link");
  fs::create_symlink(outside.file("precious"), folder + "/file-link");
  age(folder, 3600);

  CHECK(PrivateDir::remove_stale(tmp.path(), kPrefix) == 1);
  CHECK_FALSE(exists(folder));
  CHECK(exists(outside.file("precious")));
}

TEST_CASE("concurrent sweeps remove each stale folder once and spare live ones", "[common][private_dir]") {
  test::TempDir tmp;
  TmpdirOverride env(tmp.path());
  std::vector<std::string> stale;
  for (int i = 0; i < 20; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "husk-vm-st%04d", i);
    stale.push_back(tmp.file(name));
    fs::create_directories(stale.back() + "/a/b");
    touch(stale.back() + "/a/b/c");
    age(stale.back(), 3600);
  }
  Owner live;
  age(live.path(), 3600);

  std::vector<pid_t> sweepers;
  for (int i = 0; i < 4; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      PrivateDir::remove_stale(tmp.path(), kPrefix);
      ::_exit(0);
    }
    sweepers.push_back(pid);
  }
  for (const pid_t pid : sweepers) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  }
  for (const std::string& dir : stale) CHECK_FALSE(exists(dir));
  CHECK(exists(live.path() + "/.lock"));
}

}  // namespace
}  // namespace husk
