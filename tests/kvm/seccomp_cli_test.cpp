// `husk seccomp list [--json]` and `husk seccomp counts` from the real
// binary: the JSON parses and has every class, each call with its reason.
#include <set>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "seccomp/allow_list.h"
#include "tests/support/subprocess.h"

namespace {
const std::string kHusk = HUSK_BIN;
}

TEST_CASE("husk seccomp list --json gives every class's list", "[kvm][seccomp]") {
  const auto run = husk::test::run_process({kHusk, "seccomp", "list", "--json"}, 30);
  REQUIRE(run.exit_code == 0);
  const auto doc = nlohmann::json::parse(run.out);
  REQUIRE(doc["classes"].is_array());
  std::set<std::string> names;
  for (const auto& c : doc["classes"]) {
    const std::string name = c["name"];
    INFO("class " << name);
    names.insert(name);
    const auto cls = husk::seccomp::parse_class(name);
    REQUIRE(cls);
    CHECK(c["count"] == husk::seccomp::allowed_syscall_count(husk::seccomp::allow_list(*cls)));
    CHECK(c["bpf_instructions"].get<long>() > 0);
    CHECK(!c["runs"].get<std::string>().empty());
    std::set<std::string> calls;
    for (const auto& s : c["syscalls"]) {
      CHECK(!s["name"].get<std::string>().empty());
      CHECK(!s["args"].get<std::string>().empty());
      CHECK(s["reason"].get<std::string>().size() > 10);
      calls.insert(s["name"]);
    }
    CHECK(calls.count("write") == 1);
    CHECK(calls.count("exit_group") == 1);
    CHECK(calls.count("execve") == 0);
  }
  CHECK(names == std::set<std::string>{"main", "vmm", "vcpu", "blk", "rng", "vsock", "net", "console", "watchdog",
                                       "loader"});
}

TEST_CASE("husk seccomp list and counts print for people", "[kvm][seccomp]") {
  const auto list = husk::test::run_process({kHusk, "seccomp", "list"}, 30);
  REQUIRE(list.exit_code == 0);
  CHECK(list.out.find("vcpu: ") != std::string::npos);
  CHECK(list.out.find("KVM_RUN") != std::string::npos);
  const auto counts = husk::test::run_process({kHusk, "seccomp", "counts"}, 30);
  REQUIRE(counts.exit_code == 0);
  CHECK(counts.out.rfind("| thread class | system calls |", 0) == 0);
  CHECK(std::count(counts.out.begin(), counts.out.end(), '\n') == 12);
  const auto bare = husk::test::run_process({kHusk, "seccomp"}, 30);
  CHECK(bare.exit_code == 2);
}
