// The jail's errors (issue 12, item 5): a bad spec comes back to the caller
// from fork_into_jail (in the parent, before any fork) naming the path at
// fault, and leaves the jail folder as it was; check() names what this host
// lacks.
#include <catch2/catch.hpp>

#include "tests/kvm/jail/jail_harness.h"

using namespace husk;
using namespace husk::test;

namespace {

// fork_into_jail's error for `spec`, from the parent; a child that should
// not exist exits at once (and the test fails on the missing error).
std::string parent_error(const jail::JailSpec& spec) {
  const pid_t self = ::getpid();
  auto forked = jail::fork_into_jail(spec);
  if (::getpid() != self) ::_exit(70);
  if (forked) {
    ::waitpid(forked->pid, nullptr, 0);
    jail::remove_cgroup(forked->pid);
    return "<no error>";
  }
  return forked.error().message;
}

}  // namespace

TEST_CASE("a bad jail spec is an error naming what is wrong, and changes nothing", "[jail]") {
  REQUIRE(::geteuid() == 0);
  JailFolder folder;
  REQUIRE(folder.dir);
  const std::string root = folder.spec.root;
  const auto before = tree(root);

  SECTION("a bind whose source is missing") {
    jail::JailSpec spec = folder.spec;
    spec.binds.push_back({folder.sources.file("no-such-kernel"), "/kernel", true});
    CHECK(parent_error(spec) ==
          "jail bind source " + folder.sources.file("no-such-kernel") + ": No such file or directory");
  }
  SECTION("bind targets that are not plain absolute paths") {
    for (const std::string target : {"kernel", "/a/../kernel", "/./kernel", "//kernel", "/"}) {
      jail::JailSpec spec = folder.spec;
      spec.binds.push_back({folder.bound_source, target, true});
      CHECK_THAT(parent_error(spec), Catch::StartsWith("jail bind target \"" + target + "\""));
    }
  }
  SECTION("a missing root") {
    jail::JailSpec spec = folder.spec;
    spec.root = folder.sources.file("no-such-root");
    CHECK(parent_error(spec) == "jail root " + spec.root + ": No such file or directory");
  }
  SECTION("a root that the jail's uid owns") {
    jail::JailSpec spec = folder.spec;
    REQUIRE(::chown(root.c_str(), spec.uid, spec.gid) == 0);
    CHECK(parent_error(spec) == "jail root " + root + " belongs to the jail's uid 65534");
    REQUIRE(::chown(root.c_str(), 0, 0) == 0);
  }
  CHECK(tree(root) == before);
  struct stat st {};
  REQUIRE(::stat(root.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(mounts_mentioning(root).empty());
}

TEST_CASE("check() names what this host lacks for the jail", "[jail]") {
  REQUIRE(::geteuid() == 0);
  jail::JailSpec spec;
  auto checked = jail::check(spec);
  const CgroupVariant variant = cgroup_variant();
  if (variant.available) {
    WARN("variant: cgroup v2 available: check() passes");
    CHECK(checked);
    return;
  }
  WARN("variant: no cgroup v2: " << variant.problem);
  REQUIRE_FALSE(checked);
  const std::string& message = checked.error().message;
  CHECK_THAT(message, Catch::StartsWith("the jail cannot run here: "));
  CHECK_THAT(message, Catch::EndsWith(". Fix that, or run husk with --no-jail"));
  CHECK_THAT(message, Catch::Contains("cgroup v2 with the memory, cpu and pids controllers at /sys/fs/cgroup"));
  // This project's machines: a v1 hierarchy with an empty cgroup2 beside it.
  std::error_code ec;
  if (std::filesystem::exists("/sys/fs/cgroup/memory/cgroup.procs", ec) &&
      std::filesystem::exists("/sys/fs/cgroup/unified/cgroup.controllers", ec)) {
    CHECK_THAT(message, Catch::Contains("/sys/fs/cgroup is cgroup v1 (cgroup2 is mounted at /sys/fs/cgroup/unified "
                                        "without the memory"));
  }
}
