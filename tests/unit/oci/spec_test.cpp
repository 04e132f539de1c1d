// runtime/oci/spec.h: config.json as containerd and Podman write it, and
// the errors (each names the field's JSON path).
#include "runtime/oci/spec.h"

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"
#include "tests/unit/oci/oci_samples.h"

namespace {

using namespace husk::oci;
using namespace husk::oci::testing;
using nlohmann::json;

// The error parse_spec gives for `j` (which must fail).
std::string spec_error(const json& j) {
  auto spec = parse_spec(j.dump());
  REQUIRE_FALSE(spec.has_value());
  return spec.error().message;
}

json ctr() { return json::parse(kCtrConfig); }

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST_CASE("ctr run's config.json reads field by field", "[oci]") {
  auto spec = parse_spec(kCtrConfig);
  REQUIRE(spec.has_value());
  CHECK(spec->oci_version == "1.1.0");
  CHECK(spec->root_path == "rootfs");  // relative: load_bundle resolves it
  CHECK_FALSE(spec->root_readonly);
  REQUIRE(spec->process.has_value());
  const Process& p = *spec->process;
  CHECK(p.args == std::vector<std::string>{"sh", "-c", "echo hi"});
  CHECK(p.env == std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
  CHECK(p.cwd == "/");
  CHECK(p.uid == 0);
  CHECK(p.gid == 0);
  CHECK(p.additional_gids == std::vector<uint32_t>{10});
  CHECK_FALSE(p.terminal);
  CHECK(p.console_rows == 0);
  REQUIRE(p.rlimits.size() == 1);
  CHECK(p.rlimits[0].type == "RLIMIT_NOFILE");
  CHECK(p.rlimits[0].soft == 1024);
  CHECK(p.rlimits[0].hard == 1024);
  CHECK(p.no_new_privileges);
  CHECK(p.moot == std::vector<std::string>{"capabilities"});

  REQUIRE(spec->mounts.size() == 8);
  CHECK(spec->mounts[1].destination == "/dev");
  CHECK(spec->mounts[1].type == "tmpfs");
  CHECK(spec->mounts[1].source == "tmpfs");
  CHECK(spec->mounts[1].options == std::vector<std::string>{"nosuid", "strictatime", "mode=755", "size=65536k"});
  CHECK(spec->mounts[7].destination == "/run");

  CHECK(spec->resources.other == std::vector<std::string>{"devices"});
  CHECK_FALSE(spec->resources.memory_limit.has_value());
  CHECK(spec->cgroups_path == "/default/demo");
  REQUIRE(spec->namespaces.size() == 5);
  CHECK(spec->namespaces[4].type == "network");
  CHECK(spec->namespaces[4].path.empty());
  CHECK(spec->linux_other == std::vector<std::string>{"maskedPaths", "readonlyPaths"});
  CHECK(spec->hooks.empty());
  CHECK(spec->annotations.empty());
}

TEST_CASE("Podman's config.json reads field by field", "[oci]") {
  auto spec = parse_spec(replace_all(replace_all(kPodmanConfig, "@USERDATA@", "/run/u"), "@ROOTFS@", "/var/m"));
  REQUIRE(spec.has_value());
  CHECK(spec->root_path == "/var/m");
  CHECK(spec->hostname == "4f3a2b1c0d9e");
  const Process& p = *spec->process;
  CHECK(p.terminal);
  CHECK(p.console_rows == 50);
  CHECK(p.console_cols == 132);
  REQUIRE(p.umask.has_value());
  CHECK(*p.umask == 022);
  CHECK(p.additional_gids.size() == 11);
  CHECK(p.env.size() == 5);
  REQUIRE(p.rlimits.size() == 2);
  CHECK(p.rlimits[1].type == "RLIMIT_NPROC");
  CHECK(p.rlimits[1].hard == 4194304);
  CHECK(p.moot == std::vector<std::string>{"capabilities", "oomScoreAdj"});
  CHECK_FALSE(p.no_new_privileges);

  REQUIRE(spec->mounts.size() == 11);
  CHECK(spec->mounts[5].destination == "/etc/hosts");
  CHECK(spec->mounts[5].source == "/run/u/hosts");
  CHECK(spec->mounts[5].options == std::vector<std::string>{"bind", "rprivate"});
  CHECK(spec->annotations.at("io.container.manager") == "libpod");
  CHECK(spec->annotations.size() == 3);
  REQUIRE(spec->resources.pids_limit.has_value());
  CHECK(*spec->resources.pids_limit == 2048);
  CHECK(spec->resources.other.empty());
  CHECK(spec->namespaces[1].path == "/run/netns/netns-5b6c");
  // nlohmann keeps object members sorted by key.
  CHECK(spec->linux_other == std::vector<std::string>{"maskedPaths", "readonlyPaths", "seccomp", "sysctl"});
}

TEST_CASE("resources: limits, unlimited values and the fields not mapped", "[oci]") {
  json j = ctr();
  j["linux"]["resources"] = {
      {"memory", {{"limit", 536870912}, {"swap", 536870912}, {"reservation", 0}}},
      {"cpu", {{"quota", 150000}, {"period", 100000}, {"shares", 1024}, {"cpus", "0-1"}, {"mems", ""}}},
      {"pids", {{"limit", -1}}},
      {"blockIO", {{"weight", 10}}},
      {"hugepageLimits", json::array()},
  };
  auto spec = parse_spec(j.dump());
  REQUIRE(spec.has_value());
  const Resources& r = spec->resources;
  CHECK(r.memory_limit == std::optional<int64_t>(536870912));
  CHECK(r.cpu_quota == std::optional<int64_t>(150000));
  CHECK(r.cpu_period == std::optional<uint64_t>(100000));
  CHECK(r.cpu_shares == std::optional<uint64_t>(1024));
  CHECK(r.cpuset_cpus == "0-1");
  CHECK(r.pids_limit == std::optional<int64_t>(-1));
  // Empty values ask for nothing (hugepageLimits, cpu.mems); 0 is a value.
  CHECK(r.other == std::vector<std::string>{"memory.reservation", "memory.swap", "blockIO"});

  // config-linux.md: -1 is unlimited; Docker and Kubernetes leave 0 for unset.
  j["linux"]["resources"] = {{"memory", {{"limit", -1}}}, {"cpu", {{"quota", 0}}}};
  spec = parse_spec(j.dump());
  REQUIRE(spec.has_value());
  CHECK_FALSE(spec->resources.memory_limit.has_value());
  CHECK_FALSE(spec->resources.cpu_quota.has_value());
}

TEST_CASE("null reads as absent, unknown top-level fields are ignored, empty ones ask nothing", "[oci]") {
  json j = ctr();
  j["annotations"] = nullptr;
  j["hooks"] = {{"prestart", json::array()}, {"poststop", nullptr}, {"createRuntime", {{{"path", "/bin/true"}}}}};
  j["org.example.extension"] = {{"anything", 1}};
  j["linux"]["sysctl"] = json::object();
  j["process"]["apparmorProfile"] = "";
  j["process"]["user"]["username"] = "root";
  auto spec = parse_spec(j.dump());
  REQUIRE(spec.has_value());
  CHECK(spec->annotations.empty());
  CHECK(spec->hooks == std::vector<std::string>{"createRuntime"});
  CHECK_FALSE(contains(spec->linux_other, "sysctl"));
  CHECK(spec->process->moot == std::vector<std::string>{"user.username", "capabilities"});
}

TEST_CASE("a spec without a process reads (create refuses it later)", "[oci]") {
  json j = ctr();
  j.erase("process");
  auto spec = parse_spec(j.dump());
  REQUIRE(spec.has_value());
  CHECK_FALSE(spec->process.has_value());
}

TEST_CASE("spec errors name the field's JSON path", "[oci]") {
  json j = ctr();
  SECTION("required fields") {
    j.erase("ociVersion");
    CHECK(spec_error(j) == "ociVersion: missing");
    j = ctr();
    j["root"].erase("path");
    CHECK(spec_error(j) == "root.path: missing");
    j.erase("root");
    CHECK(spec_error(j) == "root.path: missing");
    j = ctr();
    j["process"].erase("args");
    CHECK(spec_error(j) == "process.args: missing");
    j["process"]["args"] = json::array();
    CHECK(spec_error(j) == "process.args: empty: at least the program is required");
    j = ctr();
    j["mounts"][2].erase("destination");
    CHECK(spec_error(j) == "mounts[2].destination: missing");
    j = ctr();
    j["process"]["rlimits"][0].erase("hard");
    CHECK(spec_error(j) == "process.rlimits[0].hard: missing");
  }
  SECTION("types") {
    j["process"]["args"] = "sh -c 'echo hi'";
    CHECK(spec_error(j) == "process.args: expected an array of strings");
    j["process"]["args"] = {"sh", 1};
    CHECK(spec_error(j) == "process.args[1]: expected a string");
    j = ctr();
    j["process"]["terminal"] = "yes";
    CHECK(spec_error(j) == "process.terminal: expected true or false");
    j = ctr();
    j["process"]["user"]["uid"] = "0";
    CHECK(spec_error(j) == "process.user.uid: expected an integer");
    j = ctr();
    j["mounts"][0]["options"] = {"nosuid", nullptr};
    CHECK(spec_error(j) == "mounts[0].options[1]: expected a string");
    j = ctr();
    j["annotations"] = {{"a", 1}};
    CHECK(spec_error(j) == "annotations[\"a\"]: expected a string");
    j = ctr();
    j["linux"]["resources"]["memory"] = {{"limit", 1.5e9}};
    CHECK(spec_error(j) == "linux.resources.memory.limit: expected an integer");
    j = ctr();
    j["linux"]["namespaces"] = {{{"path", "/x"}}};
    CHECK(spec_error(j) == "linux.namespaces[0].type: missing");
    j = ctr();
    j["hooks"] = {{"prestart", {{"path", "/bin/true"}}}};
    CHECK(spec_error(j) == "hooks.prestart: expected an array of hooks");
    j = ctr();
    j["linux"] = json::array();
    CHECK(spec_error(j) == "linux: expected an object");
    CHECK(parse_spec("[1, 2]").error().message == "expected a JSON object");
  }
  SECTION("ranges") {
    j["process"]["user"]["uid"] = -1;
    CHECK(spec_error(j) == "process.user.uid: -1 is negative");
    j["process"]["user"]["uid"] = 4294967296ull;
    CHECK(spec_error(j) == "process.user.uid: 4294967296 is out of range (at most 4294967295)");
    j = ctr();
    j["process"]["user"]["additionalGids"] = {1, -3};
    CHECK(spec_error(j) == "process.user.additionalGids[1]: -3 is negative");
    j = ctr();
    j["process"]["consoleSize"] = {{"height", 70000}, {"width", 80}};
    CHECK(spec_error(j) == "process.consoleSize.height: 70000 is out of range (at most 65535)");
    j = ctr();
    j["process"]["user"]["umask"] = 01000;
    CHECK(spec_error(j) == "process.user.umask: 512 is out of range (at most 511)");
    j = ctr();
    j["linux"]["resources"]["memory"] = {{"limit", -5}};
    CHECK(spec_error(j) == "linux.resources.memory.limit: -5 is negative (-1 means unlimited)");
    j = ctr();
    j["linux"]["resources"]["cpu"] = {{"period", -100000}};
    CHECK(spec_error(j) == "linux.resources.cpu.period: -100000 is negative");
    j = ctr();
    j["linux"]["resources"]["pids"] = {{"limit", 9223372036854775808ull}};
    CHECK(spec_error(j) ==
          "linux.resources.pids.limit: 9223372036854775808 is out of range (at most 9223372036854775807)");
    // Past 2^64: nlohmann reads it as floating point.
    CHECK(parse_spec(R"({"ociVersion":"1.0.0","root":{"path":"/r"},"process":{"args":["sh"],
                        "rlimits":[{"type":"RLIMIT_NOFILE","soft":1,"hard":18446744073709551616}]}})")
              .error()
              .message == "process.rlimits[0].hard: expected an integer of at most 18446744073709551615");
  }
  SECTION("values") {
    j["ociVersion"] = "2.0.0";
    CHECK(spec_error(j) == "ociVersion: '2.0.0' is not a 1.x version");
    j = ctr();
    j["process"]["cwd"] = "work";
    CHECK(spec_error(j) == "process.cwd: 'work' is not an absolute path");
    j = ctr();
    j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 10}, {"hard", 5}}};
    CHECK(spec_error(j) == "process.rlimits[0]: soft limit 10 is above the hard limit 5");
    j["process"]["rlimits"] = {{{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}},
                               {{"type", "RLIMIT_CORE"}, {"soft", 0}, {"hard", 0}}};
    CHECK(spec_error(j) == "process.rlimits[1].type: RLIMIT_CORE is given twice");
    j["process"]["rlimits"] = {{{"type", "nofile"}, {"soft", 0}, {"hard", 0}}};
    CHECK(spec_error(j) == "process.rlimits[0].type: expected an RLIMIT_* name");
    j = ctr();
    j["process"]["args"] = {"sh", std::string("a\0b", 3)};
    CHECK(spec_error(j) == "process.args[1]: contains a NUL character");
    j = ctr();
    j["root"]["path"] = "";
    CHECK(spec_error(j) == "root.path: empty");
  }
  SECTION("values and keys are quoted printable: one error, one line") {
    j["process"]["cwd"] = "x\nprocess.args: forged";
    CHECK(spec_error(j) == "process.cwd: 'x\\x0aprocess.args: forged' is not an absolute path");
    j = ctr();
    j["annotations"] = {{"a\nb", false}};
    CHECK(spec_error(j) == "annotations[\"a\\x0ab\"]: expected a string");
  }
}

TEST_CASE("JSON syntax errors say where, and nothing throws", "[oci]") {
  auto spec = parse_spec(R"({"ociVersion": "1.0.0", "root": {"path": "/r"},})");
  REQUIRE_FALSE(spec.has_value());
  CHECK_THAT(spec.error().message, Catch::Matchers::StartsWith("invalid JSON at byte 48: parse error at line 1, column 48"));
  CHECK(parse_spec("").error().message.rfind("invalid JSON at byte 1: ", 0) == 0);
  // A control character in the input is not echoed raw into the message.
  spec = parse_spec("{\"ociVersion\": \"1\x01\"}");
  REQUIRE_FALSE(spec.has_value());
  CHECK(spec.error().message.find('\x01') == std::string::npos);
  // Invalid UTF-8 is a syntax error, deep nesting is no crash.
  CHECK_FALSE(parse_spec("{\"ociVersion\": \"\xff\"}").has_value());
  CHECK_FALSE(parse_spec(std::string(100000, '[') + std::string(100000, ']')).has_value());
}

TEST_CASE("parse_process reads runc exec's process.json, paths relative to it", "[oci]") {
  auto p = parse_process(R"({"terminal": false, "user": {"uid": 1000, "gid": 1000}, "args": ["ls", "-l"],
                              "env": ["A=1"], "cwd": "/tmp", "rlimits": [{"type": "RLIMIT_FSIZE", "soft": 4096, "hard": 4096}]})");
  REQUIRE(p.has_value());
  CHECK(p->args == std::vector<std::string>{"ls", "-l"});
  CHECK(p->uid == 1000);
  CHECK(p->gid == 1000);
  CHECK(p->cwd == "/tmp");
  CHECK(p->rlimits.at(0).type == "RLIMIT_FSIZE");
  // cwd is optional here: "/".
  p = parse_process(R"({"args": ["true"]})");
  REQUIRE(p.has_value());
  CHECK(p->cwd == "/");
  CHECK(parse_process(R"({"cwd": "/"})").error().message == "args: missing");
  CHECK(parse_process(R"({"args": ["true"], "user": {"gid": -2}})").error().message == "user.gid: -2 is negative");
  CHECK(parse_process("\"sh\"").error().message == "expected an object");
}

TEST_CASE("load_bundle reads <bundle>/config.json and resolves root.path against it", "[oci]") {
  husk::test::TempDir dir;
  namespace fs = std::filesystem;
  const fs::path bundle = dir.path() / "bundle";
  fs::create_directories(bundle / "rootfs");
  std::ofstream(bundle / "config.json") << kCtrConfig;
  auto spec = load_bundle(bundle.string());
  REQUIRE(spec.has_value());
  CHECK(spec->root_path == (bundle / "rootfs").string());
  CHECK(spec->process->args.at(0) == "sh");

  // A relative bundle is made absolute too; "./rootfs/" normalises.
  json j = ctr();
  j["root"]["path"] = "./rootfs/";
  std::ofstream(bundle / "config.json", std::ios::trunc) << j.dump();
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  spec = load_bundle("bundle");
  fs::current_path(cwd);
  REQUIRE(spec.has_value());
  CHECK(spec->root_path == (bundle / "rootfs").string());

  // An absolute root.path is kept.
  j["root"]["path"] = "/var/lib/x/rootfs";
  std::ofstream(bundle / "config.json", std::ios::trunc) << j.dump();
  spec = load_bundle(bundle.string());
  REQUIRE(spec.has_value());
  CHECK(spec->root_path == "/var/lib/x/rootfs");

  // Errors name the file.
  j["process"]["args"] = "sh";
  std::ofstream(bundle / "config.json", std::ios::trunc) << j.dump();
  spec = load_bundle(bundle.string());
  REQUIRE_FALSE(spec.has_value());
  CHECK(spec.error().message == (bundle / "config.json").string() + ": process.args: expected an array of strings");
  spec = load_bundle((dir.path() / "none").string());
  REQUIRE_FALSE(spec.has_value());
  CHECK_THAT(spec.error().message, Catch::Matchers::Contains((dir.path() / "none" / "config.json").string()));
  CHECK(spec.error().code == ENOENT);
}
