// runtime/oci/plan.h: the plans for ctr's and Podman's config.json with
// every note, and each mapping rule on real files and folders.
#include "runtime/oci/plan.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"
#include "tests/unit/oci/oci_samples.h"

namespace {

using namespace husk::oci;
using namespace husk::oci::testing;
using nlohmann::json;
namespace fs = std::filesystem;

void write_file(const fs::path& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out << std::string(bytes, 'x');
}

// A bundle folder with a rootfs, and `j` as a Spec rooted there.
struct Bundle {
  husk::test::TempDir dir;
  fs::path rootfs = dir.path() / "rootfs";
  Bundle() { fs::create_directories(rootfs); }
  Spec spec(json j) const {
    j["root"]["path"] = rootfs.string();
    auto parsed = parse_spec(j.dump());
    REQUIRE(parsed.has_value());
    return *parsed;
  }
};

json ctr() { return json::parse(kCtrConfig); }

std::string plan_error(const Spec& spec, const PlanDefaults& defaults = {}) {
  auto plan = plan_container(spec, defaults);
  REQUIRE_FALSE(plan.has_value());
  return plan.error().message;
}

std::vector<std::string> texts(const std::vector<Note>& notes, bool warning) {
  std::vector<std::string> out;
  for (const Note& n : notes) {
    if (n.warning == warning) out.push_back(n.text);
  }
  return out;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("the plan for ctr run's config.json, with every note", "[oci]") {
  Bundle b;
  PlanDefaults defaults;
  defaults.host_cpus = 4;
  auto plan = plan_container(b.spec(ctr()), defaults);
  REQUIRE(plan.has_value());
  CHECK(plan->vcpus == 1);
  CHECK(plan->memory_mib == 256);
  CHECK(plan->rootfs == b.rootfs.string());
  CHECK_FALSE(plan->root_readonly);
  CHECK(plan->hostname.empty());
  CHECK(plan->copies.empty());
  const husk::agent::ExecRequest& p = plan->process;
  CHECK(p.argv == Lines{"sh", "-c", "echo hi"});
  CHECK(p.env == Lines{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
  CHECK(p.cwd == "/");
  CHECK(p.uid == 0);
  CHECK(p.gid == 0);
  CHECK_FALSE(p.pty);
  CHECK(p.rows == 24);
  CHECK(p.cols == 80);
  CHECK(p.limits.open_files == 1024);
  CHECK(p.limits.file_size == 0);
  CHECK(p.limits.memory_bytes == 0);
  CHECK(p.limits.pids == 0);

  CHECK(texts(plan->notes, true) == Lines{
      "process.user.additionalGids [10]: not applied: the process has no supplementary groups",
      "mount /run: tmpfs not mounted: the folder is part of the writable root (its writes go to guest RAM either way)",
      "linux.maskedPaths: not applied: the guest's /proc and /sys show only the VM",
      "linux.readonlyPaths: not applied: the guest's /proc and /sys show only the VM",
  });
  CHECK(texts(plan->notes, false) == Lines{
      "process.noNewPrivileges: not set in the guest: the VM is the boundary",
      "process.capabilities: not applied: the VM is the boundary",
      "linux.resources.devices: not applied: the VM has only its own virtual devices",
      "mounts /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup: the guest's own (their options do not apply)",
      "namespaces pid, ipc, uts, mount, network: the VM is the boundary",
      "linux.cgroupsPath /default/demo: the limits apply inside the VM",
  });
}

TEST_CASE("the plan for Podman's config.json: binds become copies", "[oci]") {
  Bundle b;
  const fs::path userdata = b.dir.path() / "userdata";
  fs::create_directories(userdata / "shm");
  write_file(userdata / "hosts", 120);
  write_file(userdata / "resolv.conf", 30);
  write_file(userdata / "hostname", 13);
  write_file(userdata / ".containerenv", 0);
  const std::string text = replace_all(kPodmanConfig, "@USERDATA@", userdata.string());
  auto plan = plan_container(b.spec(json::parse(text)), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->hostname == "4f3a2b1c0d9e");
  CHECK(plan->process.argv == Lines{"sh"});
  CHECK(plan->process.pty);
  CHECK(plan->process.rows == 50);
  CHECK(plan->process.cols == 132);
  CHECK(plan->process.env.size() == 5);
  CHECK(plan->process.limits.open_files == 1048576);
  CHECK(plan->process.limits.pids == 2048);

  REQUIRE(plan->copies.size() == 4);
  const std::pair<const char*, uint64_t> expected[] = {
      {"/etc/hosts", 120}, {"/etc/resolv.conf", 30}, {"/etc/hostname", 13}, {"/run/.containerenv", 0}};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(plan->copies[i].destination == expected[i].first);
    CHECK(plan->copies[i].bytes == expected[i].second);
    CHECK_FALSE(plan->copies[i].directory);
  }
  CHECK(plan->copies[0].source == (userdata / "hosts").string());

  CHECK(texts(plan->notes, true) == Lines{
      "process.rlimits RLIMIT_NPROC (soft 4194304, hard 4194304): not applied",
      "process.user.additionalGids [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27]: not applied: the process has no "
      "supplementary groups",
      "process.user.umask 0022: not applied: the guest agent's umask is inherited",
      "namespace network at /run/netns/netns-5b6c: not joined: the VM has loopback only",
      "linux.maskedPaths: not applied: the guest's /proc and /sys show only the VM",
      "linux.readonlyPaths: not applied: the guest's /proc and /sys show only the VM",
      "linux.seccomp: not applied: the VM is the boundary",
      "linux.sysctl: not applied",
  });
  CHECK(texts(plan->notes, false) == Lines{
      "process.capabilities: not applied: the VM is the boundary",
      "process.oomScoreAdj: not applied: the VM is the boundary",
      "mount /etc/hosts: file " + (userdata / "hosts").string() + " copied at start; later changes are not shared",
      "mount /etc/resolv.conf: file " + (userdata / "resolv.conf").string() +
          " copied at start; later changes are not shared",
      "mount /etc/hostname: file " + (userdata / "hostname").string() + " copied at start; later changes are not shared",
      "mount /run/.containerenv: file " + (userdata / ".containerenv").string() +
          " copied at start; later changes are not shared",
      "mounts /proc, /dev, /sys, /dev/pts, /dev/mqueue, /dev/shm, /sys/fs/cgroup: the guest's own (their options do "
      "not apply)",
      "namespaces pid, ipc, uts, mount, cgroup: the VM is the boundary",
      "linux.cgroupsPath machine.slice:libpod:4f3a2b1c0d9e: the limits apply inside the VM",
  });
}

TEST_CASE("memory.limit sets the guest cgroup and sizes the VM", "[oci]") {
  Bundle b;
  json j = ctr();
  j["linux"]["resources"] = {{"memory", {{"limit", 512ll << 20}}}};
  auto plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->process.limits.memory_bytes == 512ull << 20);
  CHECK(plan->memory_mib == 512 + 64);
  CHECK(texts(plan->notes, false).at(2) == "linux.resources.memory.limit 512 MiB: the guest cgroup's limit, in a 576 MiB VM");

  // Rounded up to MiB, and never below 128 MiB.
  j["linux"]["resources"] = {{"memory", {{"limit", (100ll << 20) + 1}}}};
  plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->memory_mib == 101 + 64);
  j["linux"]["resources"] = {{"memory", {{"limit", 4 << 20}}}};
  plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->memory_mib == 128);
  CHECK(plan->process.limits.memory_bytes == 4u << 20);

  // Past 1 TiB only with the annotation that sizes the VM.
  j["linux"]["resources"] = {{"memory", {{"limit", 2ll << 40}}}};
  CHECK(plan_error(b.spec(j)) == "linux.resources.memory.limit 2097152 MiB: a 2097216 MiB VM is past husk's bound of "
                                 "1048576 MiB (set io.husk.vm.memory_mib)");
  j["annotations"] = {{"io.husk.vm.memory_mib", "4096"}};
  plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->memory_mib == 4096);
  CHECK(plan->process.limits.memory_bytes == 2ull << 40);
}

TEST_CASE("cpu quota and period give the vCPU count, within the host's CPUs", "[oci]") {
  Bundle b;
  json j = ctr();
  PlanDefaults defaults;
  defaults.host_cpus = 4;
  j["linux"]["resources"] = {{"cpu", {{"quota", 150000}, {"period", 100000}, {"shares", 512}, {"cpus", "1-2"}}}};
  auto plan = plan_container(b.spec(j), defaults);
  REQUIRE(plan.has_value());
  CHECK(plan->vcpus == 2);
  const Lines infos = texts(plan->notes, false);
  CHECK(std::count(infos.begin(), infos.end(), "cpu quota 1.5 CPUs: 2 vCPUs (the fraction is not enforced)") == 1);
  CHECK(std::count(infos.begin(), infos.end(),
                   "linux.resources.cpu.shares 512: not applied: the host schedules the VM's vCPUs") == 1);
  const Lines warnings = texts(plan->notes, true);
  CHECK(std::count(warnings.begin(), warnings.end(),
                   "linux.resources.cpu.cpus '1-2': not applied: vCPU threads are not pinned") == 1);

  // Without a period, the kernel's 100 ms; past the host's CPUs, clamped.
  j["linux"]["resources"] = {{"cpu", {{"quota", 800000}}}};
  plan = plan_container(b.spec(j), defaults);
  REQUIRE(plan.has_value());
  CHECK(plan->vcpus == 4);
  CHECK(texts(plan->notes, false).at(2) == "cpu quota 8 CPUs: 4 vCPUs, this host's CPUs (the fraction is not enforced)");
  // A quarter CPU is still one vCPU.
  j["linux"]["resources"] = {{"cpu", {{"quota", 25000}, {"period", 100000}}}};
  plan = plan_container(b.spec(j), defaults);
  REQUIRE(plan.has_value());
  CHECK(plan->vcpus == 1);
  CHECK(texts(plan->notes, false).at(2) == "cpu quota 0.25 CPUs: 1 vCPU (the fraction is not enforced)");
}

TEST_CASE("annotations override the VM's shape; bad values are errors naming them", "[oci]") {
  Bundle b;
  json j = ctr();
  j["linux"]["resources"] = {{"memory", {{"limit", 2048ll << 20}}}, {"cpu", {{"quota", 200000}}}};
  j["annotations"] = {{"io.husk.vm.memory_mib", "1024"}, {"io.husk.vm.vcpus", "3"}, {"io.husk.vm.memroy", "1"},
                      {"io.kubernetes.cri.sandbox-id", "abc"}};
  PlanDefaults defaults;
  defaults.host_cpus = 8;
  auto plan = plan_container(b.spec(j), defaults);
  REQUIRE(plan.has_value());
  CHECK(plan->memory_mib == 1024);
  CHECK(plan->vcpus == 3);
  const Lines warnings = texts(plan->notes, true);
  CHECK(std::count(warnings.begin(), warnings.end(),
                   "annotation io.husk.vm.memory_mib: the VM's 1024 MiB are less than the memory limit 2048 MiB") == 1);
  CHECK(std::count(warnings.begin(), warnings.end(), "annotation io.husk.vm.memroy: unknown to husk, ignored") == 1);

  for (const char* bad : {"", "12x", "-5", "64", "99999999999999999999"}) {
    j["annotations"] = {{"io.husk.vm.memory_mib", bad}};
    CHECK(plan_error(b.spec(j)) ==
          fmt::format("annotation io.husk.vm.memory_mib: '{}' is not a number from 128 to 1048576", bad));
  }
  j["annotations"] = {{"io.husk.vm.vcpus", "0"}};
  CHECK(plan_error(b.spec(j)) == "annotation io.husk.vm.vcpus: '0' is not a number from 1 to 32");
}

TEST_CASE("bind mounts: files and small folders are copied, the rest refused with the reason", "[oci]") {
  Bundle b;
  const fs::path data = b.dir.path() / "data";
  fs::create_directories(data / "sub");
  write_file(data / "a", 1000);
  write_file(data / "sub" / "b", 2000);
  write_file(b.dir.path() / "big", 20u << 20);
  // A link to a big file counts as a link: it is not followed.
  fs::create_symlink(b.dir.path() / "big", data / "link");
  json j = ctr();
  j["mounts"] = {{{"destination", "/data/"}, {"type", "none"}, {"source", data.string()}, {"options", {"rbind", "ro"}}}};
  auto plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  REQUIRE(plan->copies.size() == 1);
  CHECK(plan->copies[0].destination == "/data");
  CHECK(plan->copies[0].directory);
  CHECK(plan->copies[0].bytes == 3000);
  const Lines infos = texts(plan->notes, false);
  CHECK(std::count(infos.begin(), infos.end(),
                   "mount /data: folder " + data.string() +
                       " copied at start; later changes are not shared; read-only is not enforced") == 1);

  SECTION("a folder over the limit") {
    fs::copy_file(b.dir.path() / "big", data / "big");
    CHECK(plan_error(b.spec(j)) ==
          "mount /data: bind mounts of folders over 16 MiB are not supported: husk copies binds into the VM");
  }
  SECTION("a file over the limit") {
    j["mounts"][0]["source"] = (b.dir.path() / "big").string();
    CHECK(plan_error(b.spec(j)) ==
          "mount /data: bind mounts of files over 16 MiB are not supported: husk copies binds into the VM");
  }
  SECTION("a folder of too many entries") {
    PlanDefaults defaults;
    CHECK(defaults.max_copy_entries == 10'000);
    defaults.max_copy_entries = 5;  // a, sub, sub/b, link: 4
    REQUIRE(plan_container(b.spec(j), defaults).has_value());
    write_file(data / "c", 0);
    write_file(data / "d", 0);
    CHECK(plan_error(b.spec(j), defaults) ==
          "mount /data: bind mounts of folders with over 5 entries are not supported: husk copies binds into the VM");
  }
  SECTION("a missing source") {
    j["mounts"][0]["source"] = (b.dir.path() / "none").string();
    auto plan2 = plan_container(b.spec(j), PlanDefaults{});
    REQUIRE_FALSE(plan2.has_value());
    CHECK(plan2.error().message ==
          "mount /data: bind source " + (b.dir.path() / "none").string() + ": No such file or directory");
    CHECK(plan2.error().code == ENOENT);
  }
  SECTION("a socket, in the folder or as the source") {
    const fs::path sock = data / "sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(sock.string().size() < sizeof(addr.sun_path));
    std::strcpy(addr.sun_path, sock.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    ::close(fd);
    CHECK(plan_error(b.spec(j)) ==
          "mount /data: " + sock.string() + " is a socket: only files, folders and symbolic links can be copied");
    j["mounts"][0]["source"] = sock.string();
    CHECK(plan_error(b.spec(j)) == "mount /data: bind source " + sock.string() +
                                       " is a socket: only files and folders can be copied into the VM");
  }
  SECTION("a relative source, a device node, a bind into /proc") {
    j["mounts"][0]["source"] = "data";
    CHECK(plan_error(b.spec(j)) == "mount /data: bind source 'data' is not an absolute path");
    j["mounts"][0]["source"] = "/dev/null";
    j["mounts"][0]["destination"] = "/dev/null";
    CHECK(plan_error(b.spec(j)) ==
          "mount /dev/null: bind source /dev/null is a character device: only files and folders can be copied into the VM");
    j["mounts"][0]["source"] = data.string();
    j["mounts"][0]["destination"] = "/proc/driver";
    CHECK(plan_error(b.spec(j)) ==
          "mount /proc/driver: binds into /proc and /sys are not supported: the guest's are its own");
  }
  SECTION("a file into /dev, as Kubernetes binds its termination log") {
    j["mounts"][0]["source"] = (data / "a").string();
    j["mounts"][0]["destination"] = "/dev/termination-log";
    auto plan2 = plan_container(b.spec(j), PlanDefaults{});
    REQUIRE(plan2.has_value());
    REQUIRE(plan2->copies.size() == 1);
    CHECK(plan2->copies[0].destination == "/dev/termination-log");
    CHECK(plan2->copies[0].bytes == 1000);
  }
}

TEST_CASE("mount types husk cannot honour are errors; tmpfs elsewhere a warning", "[oci]") {
  Bundle b;
  json j = ctr();
  j["mounts"] = {{{"destination", "/mnt/nfs"}, {"type", "nfs"}, {"source", "server:/export"}}};
  CHECK(plan_error(b.spec(j)) == "mount /mnt/nfs: type nfs is not supported: husk copies only bind mounts into the VM");
  j["mounts"] = {{{"destination", "/merged"}, {"type", "overlay"}, {"source", "overlay"}}};
  CHECK(plan_error(b.spec(j)) == "mount /merged: type overlay is not supported: husk copies only bind mounts into the VM");
  j["mounts"] = {{{"destination", "/x"}, {"source", "/tmp"}}};
  CHECK(plan_error(b.spec(j)) == "mount /x: no type, and not a bind mount");
  j["mounts"] = {{{"destination", "x"}, {"type", "tmpfs"}}};
  CHECK(plan_error(b.spec(j)) == "mount x: the destination is not an absolute path");
  // proc somewhere else is not the guest's /proc.
  j["mounts"] = {{{"destination", "/host/proc"}, {"type", "proc"}, {"source", "proc"}}};
  CHECK(plan_error(b.spec(j)) == "mount /host/proc: type proc is not supported: husk copies only bind mounts into the VM");
  j["mounts"] = {{{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}}};
  auto plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(texts(plan->notes, true).at(1) ==
        "mount /tmp: tmpfs not mounted: the folder is part of the writable root (its writes go to guest RAM either way)");
}

TEST_CASE("notes and errors quote the spec's strings as one printable line", "[oci]") {
  Bundle b;
  json j = ctr();
  j["mounts"] = {{{"destination", "/run\nwarning: forged"}, {"type", "tmpfs"}}};
  j["linux"]["cgroupsPath"] = "/a\x1b[2Jb";
  auto plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(texts(plan->notes, true).at(1) ==
        "mount /run\\x0awarning: forged: tmpfs not mounted: the folder is part of the writable root (its writes go to "
        "guest RAM either way)");
  CHECK(texts(plan->notes, false).back() == "linux.cgroupsPath /a\\x1b[2Jb: the limits apply inside the VM");
  j["mounts"] = {{{"destination", "/data\n"}, {"type", "nfs"}}};
  CHECK(plan_error(b.spec(j)) ==
        "mount /data\\x0a: type nfs is not supported: husk copies only bind mounts into the VM");
}

TEST_CASE("the plan refuses what create cannot run", "[oci]") {
  Bundle b;
  json j = ctr();
  j.erase("process");
  CHECK(plan_error(b.spec(j)) == "process: missing: create needs a process to run");
  j = ctr();
  j["hostname"] = std::string(65, 'h');
  CHECK(plan_error(b.spec(j)) == "hostname: 65 bytes; at most 64 fit");
  Spec spec = b.spec(ctr());
  spec.root_path = (b.dir.path() / "none").string();
  CHECK(plan_error(spec) == "root.path " + spec.root_path + ": No such file or directory");
  spec.root_path = "rootfs";
  CHECK(plan_error(spec) == "root.path 'rootfs': not absolute (load_bundle resolves it)");
  write_file(b.dir.path() / "file", 1);
  spec.root_path = (b.dir.path() / "file").string();
  CHECK(plan_error(spec) == "root.path " + spec.root_path + ": not a folder");
}

TEST_CASE("namespaces with paths, hooks, readonly root and domainname are reported", "[oci]") {
  Bundle b;
  json j = ctr();
  j["root"]["readonly"] = true;
  j["domainname"] = "example.org";
  j["hooks"] = {{"prestart", {{{"path", "/usr/bin/netns-setup"}}}}, {"poststop", {{{"path", "/bin/true"}}}}};
  j["linux"]["namespaces"] = {{{"type", "ipc"}, {"path", "/proc/42/ns/ipc"}}, {{"type", "user"}}, {{"type", "pid"}}};
  j["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
  j["linux"].erase("maskedPaths");
  j["linux"].erase("readonlyPaths");
  auto plan = plan_container(b.spec(j), PlanDefaults{});
  REQUIRE(plan.has_value());
  CHECK(plan->root_readonly);
  const Lines warnings = texts(plan->notes, true);
  for (const char* text : {"domainname example.org: not set",
                           "namespace ipc at /proc/42/ns/ipc: not joined: the container has its own in its VM",
                           "namespace user: its uidMappings and gidMappings are not applied: IDs in the VM are as given",
                           "hooks.poststop: not run", "hooks.prestart: not run",
                           "linux.uidMappings: not applied: IDs in the VM are as given"}) {
    CHECK(std::count(warnings.begin(), warnings.end(), text) == 1);
  }
  const Lines infos = texts(plan->notes, false);
  CHECK(std::count(infos.begin(), infos.end(), "root.readonly: kept, though writes go to guest RAM either way") == 1);
  CHECK(std::count(infos.begin(), infos.end(), "namespaces pid: the VM is the boundary") == 1);
}

TEST_CASE("plan_exec maps a process alone, as exec does", "[oci]") {
  auto process = parse_process(R"({"args": ["ls"], "cwd": "/tmp", "user": {"uid": 1000, "gid": 100},
      "terminal": true, "consoleSize": {"height": 40, "width": 0},
      "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                  {"type": "RLIMIT_FSIZE", "soft": 18446744073709551615, "hard": 18446744073709551615},
                  {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
      "scheduler": {"policy": "SCHED_OTHER"}})");
  REQUIRE(process.has_value());
  std::vector<Note> notes;
  auto req = plan_exec(*process, notes);
  REQUIRE(req.has_value());
  CHECK(req->argv == Lines{"ls"});
  CHECK(req->cwd == "/tmp");
  CHECK(req->uid == 1000);
  CHECK(req->gid == 100);
  CHECK(req->pty);
  CHECK(req->rows == 40);
  CHECK(req->cols == 80);  // 0: the default
  CHECK(req->limits.open_files == 4096);
  CHECK(req->limits.file_size == 0);  // unlimited
  CHECK(texts(notes, false) == Lines{
      "process.rlimits RLIMIT_NOFILE: soft 1024 raised to the hard 4096 (the guest sets both)",
      "process.rlimits RLIMIT_FSIZE: unlimited: the guest's default applies",
  });
  CHECK(texts(notes, true) == Lines{"process.rlimits RLIMIT_CORE (soft 0, hard 0): not applied",
                                    "process.scheduler: not applied"});

  Process empty;
  CHECK(plan_exec(empty, notes).error().message == "process.args: empty: nothing to run");
}
