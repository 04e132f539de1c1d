// The container state store (runtime/oci/container_state.h): state.json
// files in a real folder, ids as runc takes them, and the status of a
// keeper told by a real child process's liveness and start time.
#include "runtime/oci/container_state.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"

namespace husk::oci {
namespace {

namespace fs = std::filesystem;

ContainerState sample_state(const std::string& id) {
  ContainerState s;
  s.id = id;
  s.bundle = "/run/bundles/" + id;
  s.rootfs = "/run/bundles/" + id + "/rootfs";
  s.status = Status::kCreated;
  s.pid = 4242;
  s.pid_start = 987654321;
  s.created = "2024-05-01T12:00:00.000000000Z";
  s.annotations = {{"io.kubernetes.cri.container-type", "container"}, {"org.example/empty", ""}};
  s.vsock_path = "/run/husk/" + id + "/vsock";
  s.image = "/var/lib/husk/images/abc.ext4";
  return s;
}

void require_same(const ContainerState& a, const ContainerState& b) {
  CHECK(a.id == b.id);
  CHECK(a.bundle == b.bundle);
  CHECK(a.rootfs == b.rootfs);
  CHECK(a.status == b.status);
  CHECK(a.pid == b.pid);
  CHECK(a.pid_start == b.pid_start);
  CHECK(a.created == b.created);
  CHECK(a.annotations == b.annotations);
  CHECK(a.vsock_path == b.vsock_path);
  CHECK(a.image == b.image);
  CHECK(a.exit_status == b.exit_status);
  CHECK(a.error == b.error);
}

// A child that lives until its pipe is closed, so the test decides when it
// exits; reaped by the destructor if the test did not.
class Child {
 public:
  Child() {
    int fds[2] = {-1, -1};
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(fds[1]);
      char c = 0;
      // Only async-signal-safe calls after fork in a threaded process.
      while (::read(fds[0], &c, 1) > 0) {
      }
      ::_exit(0);
    }
    ::close(fds[0]);
    write_end_ = fds[1];
  }
  ~Child() {
    end();
    reap();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  [[nodiscard]] int pid() const { return pid_; }
  // Lets the child exit (it stays a zombie until reaped).
  void end() {
    if (write_end_ >= 0) ::close(write_end_);
    write_end_ = -1;
  }
  void reap() {
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    pid_ = -1;
  }
  // Waits until the exited child shows up as a zombie in /proc.
  void wait_for_zombie() const {
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) == 0);
  }

 private:
  int pid_ = -1;
  int write_end_ = -1;
};

TEST_CASE("state store: create, load, save, ids and remove round trip", "[oci][state]") {
  test::TempDir tmp;
  const std::string root = tmp.file("root/nested");
  StateStore store(root);
  CHECK(store.dir("c1") == root + "/c1");
  CHECK(store.control_path("c1") == root + "/c1/control.sock");

  auto none = store.ids();
  REQUIRE(none);
  CHECK(none->empty());

  ContainerState first = sample_state("c1");
  REQUIRE(store.create(first));
  // The root is the owner's only: other users must not reach control sockets.
  struct stat st {};
  REQUIRE(::stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(::stat(store.dir("c1").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);

  auto loaded = store.load("c1");
  REQUIRE(loaded);
  require_same(*loaded, first);
  CHECK_FALSE(loaded->exit_status.has_value());

  // A keeper's last word: stopped with an exit status and an error.
  first.status = Status::kStopped;
  first.exit_status = 137;
  first.error = "the VM stopped";
  REQUIRE(store.save(first));
  loaded = store.load("c1");
  REQUIRE(loaded);
  require_same(*loaded, first);
  REQUIRE(loaded->exit_status.has_value());
  CHECK(*loaded->exit_status == 137);
  // Written through a temporary and a rename: no temporary is left.
  CHECK_FALSE(fs::exists(store.dir("c1") + "/state.json.tmp"));

  REQUIRE(store.create(sample_state("b-0")));
  REQUIRE(store.create(sample_state("a.b_c+d")));
  // A folder without state.json (not a container) is not listed.
  fs::create_directories(root + "/stray");
  auto ids = store.ids();
  REQUIRE(ids);
  CHECK(*ids == std::vector<std::string>{"a.b_c+d", "b-0", "c1"});

  REQUIRE(store.remove("b-0"));
  CHECK_FALSE(fs::exists(store.dir("b-0")));
  ids = store.ids();
  REQUIRE(ids);
  CHECK(*ids == std::vector<std::string>{"a.b_c+d", "c1"});
  // Removing what is gone is not an error (delete --force after a crash).
  CHECK(store.remove("b-0"));
}

TEST_CASE("state store: a second create of an id is EEXIST and keeps the first", "[oci][state]") {
  test::TempDir tmp;
  StateStore store(tmp.file("root"));
  REQUIRE(store.create(sample_state("dup")));
  ContainerState other = sample_state("dup");
  other.bundle = "/elsewhere";
  auto again = store.create(other);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == EEXIST);
  CHECK_THAT(again.error().message, Catch::Contains("dup"));
  auto loaded = store.load("dup");
  REQUIRE(loaded);
  CHECK(loaded->bundle == "/run/bundles/dup");
}

TEST_CASE("state store: a missing container is ENOENT naming it", "[oci][state]") {
  test::TempDir tmp;
  StateStore store(tmp.file("root"));
  auto missing = store.load("ghost");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ENOENT);
  CHECK(missing.error().message == "container ghost does not exist");
  // An invalid id is refused before any path is built from it.
  auto bad = store.load("../etc");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == EINVAL);
  CHECK_FALSE(store.remove(".."));
  CHECK_FALSE(store.create(sample_state("a/b")));
}

TEST_CASE("state store: a corrupt state.json is an error naming the path", "[oci][state]") {
  test::TempDir tmp;
  StateStore store(tmp.file("root"));
  REQUIRE(store.create(sample_state("broken")));
  const std::string path = store.dir("broken") + "/state.json";

  SECTION("not JSON") { std::ofstream(path, std::ios::trunc) << "{\"id\": \"broken\", "; }
  SECTION("a field of the wrong type") {
    std::ofstream(path, std::ios::trunc) << R"({"id":"broken","bundle":"/b","status":"created","pid":"x"})";
  }
  SECTION("an unknown status") {
    std::ofstream(path, std::ios::trunc) << R"({"id":"broken","bundle":"/b","status":"paused-ish","pid":1})";
  }
  SECTION("a missing field") { std::ofstream(path, std::ios::trunc) << R"({"id":"broken"})"; }

  auto loaded = store.load("broken");
  REQUIRE_FALSE(loaded);
  CHECK_THAT(loaded.error().message, Catch::StartsWith(path + ": "));
}

TEST_CASE("check_id takes runc's ids and refuses the rest", "[oci][state]") {
  for (const std::string id : {"a", "abc", "ABC-def_1.2+3", "..a", "a..", ".hidden",
                               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}) {
    INFO(id);
    CHECK(check_id(id));
  }
  CHECK(check_id(std::string(1024, 'x')));
  for (const std::string id : {"", ".", "..", "a/b", "/abs", "a b", "a\nb", "ü", "a:b", "a*"}) {
    INFO(id);
    auto r = check_id(id);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == EINVAL);
  }
  auto too_long = check_id(std::string(1025, 'x'));
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error().code == EINVAL);
  // The message quotes at most a part of an id, not a whole kilobyte.
  CHECK(too_long.error().message.size() < 200);
}

TEST_CASE("current_status follows the keeper's liveness and start time", "[oci][state]") {
  Child child;
  ContainerState s = sample_state("live");
  s.status = Status::kRunning;
  s.pid = child.pid();
  s.pid_start = process_start_time(child.pid());
  REQUIRE(s.pid_start != 0);
  CHECK(process_start_time(child.pid()) == s.pid_start);
  CHECK(current_status(s) == Status::kRunning);
  s.status = Status::kCreated;
  CHECK(current_status(s) == Status::kCreated);

  // The same pid with another start time is another process: a recycled pid.
  ContainerState other = s;
  other.pid_start = s.pid_start + 1;
  CHECK(current_status(other) == Status::kStopped);

  // The stored "stopped" wins over a live pid.
  ContainerState said_stopped = s;
  said_stopped.status = Status::kStopped;
  CHECK(current_status(said_stopped) == Status::kStopped);

  // Exited but not reaped: a zombie has ended.
  child.end();
  child.wait_for_zombie();
  CHECK(process_start_time(s.pid) == 0);
  CHECK(current_status(s) == Status::kStopped);

  child.reap();
  CHECK(process_start_time(s.pid) == 0);
  CHECK(current_status(s) == Status::kStopped);

  CHECK(process_start_time(0) == 0);
  CHECK(process_start_time(-1) == 0);
}

TEST_CASE("oci_state_json has the runtime spec's fields", "[oci][state]") {
  Child child;
  ContainerState s = sample_state("spec");
  s.status = Status::kRunning;
  s.pid = child.pid();
  s.pid_start = process_start_time(child.pid());

  const nlohmann::json running = oci_state_json(s);
  CHECK(running.at("ociVersion") == kOciVersion);
  CHECK(running.at("id") == "spec");
  CHECK(running.at("status") == "running");
  CHECK(running.at("pid") == child.pid());
  CHECK(running.at("bundle") == "/run/bundles/spec");
  CHECK(running.at("rootfs") == "/run/bundles/spec/rootfs");
  CHECK(running.at("created") == "2024-05-01T12:00:00.000000000Z");
  CHECK(running.at("annotations").at("io.kubernetes.cri.container-type") == "container");
  CHECK(running.at("annotations").at("org.example/empty") == "");
  // husk's own fields stay in state.json, not in what `state` prints.
  CHECK_FALSE(running.contains("vsock_path"));
  CHECK_FALSE(running.contains("pid_start"));

  child.end();
  child.reap();
  const nlohmann::json stopped = oci_state_json(s);
  CHECK(stopped.at("status") == "stopped");
  CHECK(stopped.at("pid") == 0);

  // No annotations is an empty object, which the spec allows and shims parse.
  ContainerState bare = sample_state("bare");
  bare.annotations.clear();
  bare.status = Status::kStopped;
  const nlohmann::json j = oci_state_json(bare);
  REQUIRE(j.contains("annotations"));
  CHECK(j.at("annotations").is_object());
  CHECK(j.at("annotations").empty());
}

TEST_CASE("status names are the runtime spec's", "[oci][state]") {
  CHECK(std::string(status_name(Status::kCreating)) == "creating");
  CHECK(std::string(status_name(Status::kCreated)) == "created");
  CHECK(std::string(status_name(Status::kRunning)) == "running");
  CHECK(std::string(status_name(Status::kStopped)) == "stopped");
  for (Status st : {Status::kCreating, Status::kCreated, Status::kRunning, Status::kStopped}) {
    ContainerState s = sample_state("x");
    s.status = st;
    auto back = state_from_json(to_json(s));
    REQUIRE(back);
    CHECK(back->status == st);
  }
}

}  // namespace
}  // namespace husk::oci
