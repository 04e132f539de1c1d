// The jail's cgroup (issue 12, item 5): its limits are set and apply (pids,
// memory), it is removed after the jail; and kill -9 of husk takes its
// jail down within a second (parent-death signals) and leaves a cgroup that
// the next sweep_stale() removes. The cgroup parts run where cgroup v2 is
// available; elsewhere check()'s message is asserted instead (WARN says
// which ran).
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <catch2/catch.hpp>

#include "tests/kvm/jail/jail_harness.h"

using namespace husk;
using namespace husk::test;

namespace {

constexpr uint32_t kPidsMax = 16;
constexpr uint64_t kMemoryMax = 64ull << 20;

// Makes the calling test process the reaper of its orphaned descendants
// for its lifetime.
struct Subreaper {
  Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
  ~Subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); }
  Subreaper(const Subreaper&) = delete;
  Subreaper& operator=(const Subreaper&) = delete;
};

// The jailed process of the limits test: waits for the parent's go, forks
// until pids.max says no, then eats memory until memory.max kills it.
[[noreturn]] void limits_body(const Reporter& r, int go) {
  r.put("ready", "1");
  char byte = 0;
  if (::read(go, &byte, 1) != 1) ::_exit(71);
  uint32_t forks = 0;
  int err = 0;
  for (uint32_t i = 0; i < 2 * kPidsMax; ++i) {
    const pid_t p = ::fork();
    if (p == 0) {
      ::pause();
      ::_exit(0);
    }
    if (p < 0) {
      err = errno;
      break;
    }
    ++forks;
  }
  r.put("forks", forks);
  r.put("fork_error", errno_name(err));
  const size_t size = 4 * kMemoryMax;
  auto* p = static_cast<char*>(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  r.put("mmap", p == MAP_FAILED ? errno_name(errno) : "0");
  if (p != MAP_FAILED) {
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
  }
  r.put("survived_memory", "1");
  ::_exit(0);
}

}  // namespace

TEST_CASE("the jail's cgroup has its limits, they apply, and it is removed after the jail", "[jail]") {
  REQUIRE(::geteuid() == 0);
  JailFolder folder;
  REQUIRE(folder.dir);
  jail::JailSpec spec = folder.spec;
  spec.cgroup = {kMemoryMax, kPidsMax, 50};
  const CgroupVariant variant = cgroup_variant();
  auto checked = jail::check(spec);
  const pid_t self = ::getpid();
  if (!variant.available) {
    WARN("variant: no cgroup v2 on this host: check()'s message and fork_into_jail's error are asserted instead");
    REQUIRE_FALSE(checked);
    CHECK(checked.error().message ==
          "the jail cannot run here: " + variant.problem + ". Fix that, or run husk with --no-jail");
    auto forked = jail::fork_into_jail(spec);
    if (::getpid() != self) ::_exit(70);  // never: the cgroup fails in the parent
    REQUIRE_FALSE(forked);
    CHECK_THAT(forked.error().message, Catch::Contains("/sys/fs/cgroup"));
    CHECK(mounts_mentioning(spec.root).empty());
    return;
  }
  WARN("variant: cgroup v2 available: the limits are checked");
  REQUIRE(checked);

  ReportPipe pipe;
  ReportPipe go;
  auto forked = jail::fork_into_jail(spec);
  if (::getpid() != self) {
    const Reporter r(pipe.write_end.get());
    if (!forked) {
      r.put("setup_error", forked.error().message);
      ::_exit(70);
    }
    limits_body(r, go.read_end.get());
  }
  REQUIRE(forked);
  const pid_t pid = forked->pid;
  pipe.write_end.reset();
  go.read_end.reset();

  Report report = read_report(pipe.read_end.get(), 30, "ready");
  REQUIRE(report.get("ready") == "1");
  const std::string path = std::string(jail::cgroup::kMount) + cgroup_of(pid);
  INFO("cgroup " << path);
  CHECK(path.rfind(std::string(jail::cgroup::kMount) + "/husk/" + std::to_string(self) + "-", 0) == 0);
  CHECK(slurp(path + "/memory.max") == std::to_string(kMemoryMax));
  if (std::filesystem::exists(path + "/memory.swap.max")) CHECK(slurp(path + "/memory.swap.max") == "0");
  CHECK(slurp(path + "/pids.max") == std::to_string(kPidsMax));
  CHECK(slurp(path + "/cpu.max") == "50000 100000");
  CHECK(slurp(path + "/pids.current") == "2");  // the first child and the jailed process
  CHECK(slurp(std::string(jail::cgroup::kMount) + "/husk/cgroup.procs").empty());

  REQUIRE(::write(go.write_end.get(), "g", 1) == 1);
  read_report_into(report, pipe.read_end.get(), 60);
  const int status = wait_for_exit(pid, 30);
  if (status == -1) ::kill(pid, SIGKILL), ::waitpid(pid, nullptr, 0);
  const std::string events = slurp(path + "/memory.events");
  jail::remove_cgroup(pid);

  CHECK(report.get("forks") == std::to_string(kPidsMax - 2));
  CHECK(report.get("fork_error") == "EAGAIN");
  CHECK(report.get("mmap") == "0");
  CHECK(report.get("survived_memory") == "<missing>");
  CHECK(describe_status(status) == "killed by KILL");
  CHECK_THAT(events, Catch::Contains("oom_kill ") && !Catch::Contains("oom_kill 0"));
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(mounts_mentioning(spec.root).empty());
  jail::remove_cgroup(pid);  // idempotent
}

TEST_CASE("kill -9 of husk takes its jail down at once, and the next sweep removes its cgroup", "[jail]") {
  REQUIRE(::geteuid() == 0);
  JailFolder folder;
  REQUIRE(folder.dir);
  jail::JailSpec spec = folder.spec;
  spec.cgroup = {256ull << 20, 64, 100};
  const CgroupVariant variant = cgroup_variant();
  if (variant.available) {
    WARN("variant: cgroup v2 available: the jail has its cgroup, and the sweep is checked");
  } else {
    WARN("variant: no cgroup v2 on this host (" << variant.problem << "): only the parent-death part");
  }
  const auto with = variant.available ? jail::WithCgroup::kYes : jail::WithCgroup::kNo;

  Subreaper reaper;
  ReportPipe pipe;
  const pid_t husk = ::fork();
  REQUIRE(husk >= 0);
  if (husk == 0) {
    // The "husk" that will be killed: it jails a process that only sleeps.
    const pid_t me = ::getpid();
    const Reporter r(pipe.write_end.get());
    auto forked = jail::fork_jailed(spec, with);
    if (!forked) {
      r.put(::getpid() == me ? "husk_error" : "setup_error", forked.error().message);
      ::_exit(70);
    }
    if (forked->jailed) {
      r.put("jailed", "1");
      for (;;) ::pause();
    }
    r.put("first_child", forked->pid);
    for (;;) ::pause();
  }
  pipe.write_end.reset();
  Report report = read_report(pipe.read_end.get(), 30, "jailed");
  if (report.get("first_child") == "<missing>") read_report_into(report, pipe.read_end.get(), 10, "first_child");
  INFO("husk " << husk << ", first child " << report.get("first_child") << ", errors: " << report.get("husk_error")
               << " / " << report.get("setup_error"));
  REQUIRE(report.get("jailed") == "1");
  REQUIRE(report.get("first_child") != "<missing>");
  const pid_t first = std::stoi(report.get("first_child"));
  const auto jailed = children_of(first);
  REQUIRE(jailed.size() == 1);
  const std::string path = std::string(jail::cgroup::kMount) + cgroup_of(first);
  if (variant.available) REQUIRE(path.rfind(std::string(jail::cgroup::kMount) + "/husk/" + std::to_string(husk) + "-", 0) == 0);

  const auto start = std::chrono::steady_clock::now();
  REQUIRE(::kill(husk, SIGKILL) == 0);
  CHECK(describe_status(wait_for_exit(husk, 5)) == "killed by KILL");
  const int first_status = wait_for_exit(first, 1.0);
  const int jailed_status = wait_for_exit(jailed[0], 1.0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(describe_status(first_status) == "killed by KILL");
  CHECK(describe_status(jailed_status) == "killed by KILL");
  CHECK(seconds < 1.0);
  if (first_status == -1) ::kill(first, SIGKILL), ::waitpid(first, nullptr, 0);
  if (jailed_status == -1) ::kill(jailed[0], SIGKILL), ::waitpid(jailed[0], nullptr, 0);
  CHECK(mounts_mentioning(spec.root).empty());
  if (!variant.available) return;

  // The dead husk's cgroup is still there; a live owner's is not swept.
  CHECK(std::filesystem::exists(path));
  const std::string live = std::string(jail::cgroup::kMount) + "/husk/1-999999";
  REQUIRE(::mkdir(live.c_str(), 0755) == 0);
  jail::sweep_stale();
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(std::filesystem::exists(live));
  ::rmdir(live.c_str());
}
