// The jail and the seccomp filters of a real `husk run` (issue 12), looked
// at from outside while the real guest runs: the VMM process is PID 1 of
// its own namespaces, sees only its folder, has no network but loopback,
// runs as nobody without capabilities, every thread under its filter, in a
// cgroup with limits from the job; and nothing of the jail is left after
// the run, also after kill -9 of husk (the next run sweeps). The jail's
// behaviour from inside (files, connections, processes it cannot reach) is
// tested in tests/kvm/jail/.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "tests/e2e/run_support.h"

using namespace husk::test;
using namespace husk::test::run;

namespace {

std::string status_field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      const size_t start = line.find_first_not_of(" \t", key.size() + 1);
      return start == std::string::npos ? "" : line.substr(start);
    }
  }
  return "";
}

// The pid of the sandbox's VMM process: the one with a thread husk-vcpu0.
pid_t vmm_pid(const Sandbox& sb) {
  for (const std::string& p : processes_of(sb)) {
    const std::string pid = p.substr(0, p.find(':'));
    const fs::path task = fs::path("/proc") / pid / "task";
    std::error_code ec;
    for (const auto& t : fs::directory_iterator(task, ec)) {
      std::string comm = read_file(t.path() / "comm");
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      if (comm == "husk-vcpu0") return static_cast<pid_t>(std::stoi(pid));
    }
  }
  return -1;
}

template <typename F>
bool eventually(F f, std::chrono::milliseconds within) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

std::string ns_of(const std::string& pid, const std::string& ns) {
  std::error_code ec;
  return fs::read_symlink("/proc/" + pid + "/ns/" + ns, ec).string();
}

// The husk/<pid>-<n> cgroups that exist now.
std::set<std::string> husk_cgroups() {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup/husk", ec)) {
    if (e.is_directory()) out.insert(e.path().filename().string());
  }
  return out;
}

// What the running VMM process shows from outside, collected while the job
// sleeps (checked afterwards, on the test's own thread).
struct Observed {
  pid_t pid = -1;
  std::string status;                 // /proc/PID/status
  std::map<std::string, std::string> threads;  // name -> "Seccomp/NoNewPrivs"
  std::map<std::string, std::string> ns;       // ns -> link, for mnt net pid ipc uts
  std::vector<std::string> root;      // entries of its "/"
  std::vector<std::string> mounts;    // its mount points
  std::string net_dev;                // /proc/PID/net/dev
  std::string cgroup;                 // its cgroup path
  std::map<std::string, std::string> cgroup_files;
};

Observed observe(const Sandbox& sb) {
  Observed o;
  if (!eventually([&] { return (o.pid = vmm_pid(sb)) > 0; }, std::chrono::seconds(120))) return o;
  const std::string pid = std::to_string(o.pid);
  const fs::path proc = fs::path("/proc") / pid;
  o.status = read_file(proc / "status");
  std::error_code ec;
  for (const auto& t : fs::directory_iterator(proc / "task", ec)) {
    const std::string st = read_file(t.path() / "status");
    // A thread that ended since the listing (a held-back initrd's loader,
    // done) has no status left to read.
    if (st.empty()) continue;
    o.threads[status_field(st, "Name")] = status_field(st, "Seccomp") + "/" + status_field(st, "NoNewPrivs");
  }
  for (const char* ns : {"mnt", "net", "pid", "ipc", "uts", "cgroup"}) o.ns[ns] = ns_of(pid, ns);
  for (const auto& e : fs::directory_iterator(proc / "root", ec)) o.root.push_back(e.path().filename().string());
  std::istringstream mi(read_file(proc / "mountinfo"));
  for (std::string line; std::getline(mi, line);) {
    std::istringstream words(line);
    std::string id, parent, dev, root, point;
    words >> id >> parent >> dev >> root >> point;
    o.mounts.push_back(point);
  }
  o.net_dev = read_file(proc / "net" / "dev");
  std::string cg = read_file(proc / "cgroup");
  if (const size_t at = cg.find("0::"); at != std::string::npos) {
    o.cgroup = cg.substr(at + 3, cg.find('\n', at) - at - 3);
    for (const char* f : {"memory.max", "memory.swap.max", "pids.max", "cpu.max", "memory.current", "cgroup.procs"}) {
      std::string v = read_file(fs::path("/sys/fs/cgroup") / o.cgroup.substr(1) / f);
      while (!v.empty() && v.back() == '\n') v.pop_back();
      o.cgroup_files[f] = v;
    }
  }
  return o;
}

}  // namespace

TEST_CASE("husk run as root jails its VMM: own namespaces, its folder as /, nobody, no capabilities, every thread "
          "filtered, a cgroup with the job's limits; nothing left after",
          "[e2e][jail]") {
  REQUIRE(::geteuid() == 0);
  Sandbox sb;
  const std::set<std::string> cgroups_before = husk_cgroups();
  auto running = std::async(std::launch::async, [&] { return husk_run(sb, job_path("sleep3.toml")); });
  Observed o = observe(sb);
  HuskRun run = running.get();
  INFO(brief(run.result));
  CHECK(run.proc.exit_code == 0);
  CHECK(run.result.value("verdict", "") == "OK");

  REQUIRE(o.pid > 0);
  INFO("VMM status:\n" << o.status);
  // PID 1 of its own PID namespace.
  const std::string nspid = status_field(o.status, "NSpid");
  CHECK(nspid.substr(nspid.find_last_of(" \t") + 1) == "1");
  // nobody, no capabilities at all, no way to gain any.
  CHECK(status_field(o.status, "Uid") == "65534\t65534\t65534\t65534");
  CHECK(status_field(o.status, "Gid") == "65534\t65534\t65534\t65534");
  CHECK(status_field(o.status, "CapEff") == "0000000000000000");
  CHECK(status_field(o.status, "CapPrm") == "0000000000000000");
  CHECK(status_field(o.status, "CapBnd") == "0000000000000000");
  CHECK(status_field(o.status, "NoNewPrivs") == "1");
  // Every thread of husk's under a seccomp filter (KVM's kernel threads aside).
  CHECK(o.threads.count("husk-vcpu0") == 1);
  CHECK(o.threads.count("husk-rng0") == 1);
  CHECK(o.threads.count("husk-vsock1") == 1);
  for (const auto& [name, state] : o.threads) {
    if (name.rfind("kvm-", 0) == 0) continue;
    INFO("thread " << name);
    CHECK(state == "2/1");
  }
  // New namespaces, all of them.
  const std::string self = std::to_string(::getpid());
  for (const auto& [ns, link] : o.ns) {
    INFO("namespace " << ns << ": " << link);
    CHECK_FALSE(link.empty());
    CHECK(link != ns_of(self, ns));
  }
  // Its "/" holds only what the VM needs; its mounts are those and "/".
  std::set<std::string> root(o.root.begin(), o.root.end());
  CAPTURE(o.root);
  for (const std::string& e : root) {
    CHECK(std::set<std::string>{"dev", "kernel", "initrd", "vsock.sock", "console.log", ".lock"}.count(e) == 1);
  }
  CHECK(root.count("kernel") == 1);
  CHECK(root.count("vsock.sock") == 1);
  CAPTURE(o.mounts);
  for (const std::string& m : o.mounts) CHECK(std::set<std::string>{"/", "/dev/kvm", "/kernel", "/initrd"}.count(m) == 1);
  // No network but its own loopback.
  INFO("net/dev:\n" << o.net_dev);
  CHECK(contains(o.net_dev, "lo:"));
  CHECK_FALSE(contains(o.net_dev, "eth"));
  CHECK(std::count(o.net_dev.begin(), o.net_dev.end(), '\n') == 3);  // two header lines and lo
  // Its own cgroup, with limits from the job's VM (192 MiB + 160 MiB).
  CAPTURE(o.cgroup, o.cgroup_files);
  CHECK(o.cgroup.rfind("/husk/", 0) == 0);
  CHECK(o.cgroup_files["memory.max"] == std::to_string((192ull + 160) << 20));
  CHECK(o.cgroup_files["memory.swap.max"] == "0");
  CHECK(o.cgroup_files["pids.max"] == "9");
  // Two CPUs' worth (1 vCPU + 1 for the devices), unless the host has no
  // more than two: then it could not bind and is left at max.
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  CHECK(o.cgroup_files["cpu.max"] == (cpus > 2 ? "200000 100000" : "max 100000"));
  CHECK(contains(o.cgroup_files["cgroup.procs"], std::to_string(o.pid)));
  // The guest's memory is charged to it: every page it wrote. (The
  // kernel's read-only segments are mapped from its file,
  // GuestMemory::load_file: the pages the guest only reads are page cache,
  // shared by every VM and not charged to this one.)
  CHECK(std::stoull(o.cgroup_files["memory.current"].empty() ? "0" : o.cgroup_files["memory.current"]) > (3ull << 20));

  // Nothing left: folder, processes, mounts, cgroup.
  check_nothing_left(sb);
  CHECK_FALSE(contains(read_file("/proc/self/mountinfo"), sb.tmp));
  CHECK(husk_cgroups() == cgroups_before);
}

TEST_CASE("kill -9 of a jailed husk ends its VMM; the next run sweeps its cgroup and folder", "[e2e][jail]") {
  Sandbox sb;
  const std::set<std::string> cgroups_before = husk_cgroups();
  // SIGKILL once the VMM runs (the job sleeps 4 s after boot).
  auto running = std::async(std::launch::async, [&] {
    return run_process({"env", "TMPDIR=" + sb.tmp, husk_bin(), "run", job_path("sleep3.toml"), "--kernel",
                        guest_file("vmlinux"), "--initrd", guest_file("initramfs.cpio")},
                       kRunTimeoutS);
  });
  REQUIRE(eventually([&] { return vmm_pid(sb) > 0; }, std::chrono::seconds(120)));
  // husk is the sandbox's process that is not the VMM, nor the relay in
  // between (that one has no thread of the VM either; kill the oldest).
  pid_t husk = -1;
  for (const std::string& p : processes_of(sb)) {
    const pid_t pid = static_cast<pid_t>(std::stoi(p.substr(0, p.find(':'))));
    if (contains(p, " run ") && (husk < 0 || pid < husk)) husk = pid;
  }
  REQUIRE(husk > 0);
  REQUIRE(::kill(husk, SIGKILL) == 0);
  const ProcessResult killed = running.get();
  CHECK(killed.signal == SIGKILL);
  // Its VMM and the relay go with it.
  CHECK(eventually([&] { return processes_of(sb).empty(); }, std::chrono::seconds(10)));
  std::set<std::string> left = husk_cgroups();
  for (const std::string& c : cgroups_before) left.erase(c);
  CAPTURE(left);
  CHECK(left.size() == 1);  // the killed husk's cgroup, empty now
  CHECK(vm_folders(sb.tmp).size() == 1);

  // The next run (any job) sweeps both.
  HuskRun next = husk_run(sb, job_path("verdicts.toml"));
  CHECK(next.proc.exit_code != 2);
  CHECK(vm_folders(sb.tmp).empty());
  CHECK(husk_cgroups() == cgroups_before);
}

TEST_CASE("--no-jail runs the VMM as husk's own user, still with every thread filtered; --seccomp=off filters none",
          "[e2e][jail]") {
  Sandbox sb;
  auto running = std::async(std::launch::async, [&] { return husk_run(sb, job_path("sleep3.toml"), {"--no-jail"}); });
  Observed o = observe(sb);
  HuskRun run = running.get();
  CHECK(run.result.value("verdict", "") == "OK");
  REQUIRE(o.pid > 0);
  CHECK(status_field(o.status, "Uid").rfind("0\t", 0) == 0);
  CHECK(o.ns.at("net") == ns_of(std::to_string(::getpid()), "net"));
  CHECK(o.threads.at("husk-vcpu0") == "2/1");

  Sandbox sb2;
  auto off = std::async(std::launch::async,
                        [&] { return husk_run(sb2, job_path("sleep3.toml"), {"--no-jail", "--seccomp=off"}); });
  Observed o2 = observe(sb2);
  HuskRun run2 = off.get();
  CHECK(run2.result.value("verdict", "") == "OK");
  REQUIRE(o2.pid > 0);
  CHECK(o2.threads.at("husk-vcpu0") == "0/1");
}

TEST_CASE("a jailed husk exec takes a kernel and an initrd given by relative paths", "[e2e][jail]") {
  Sandbox sb;
  const fs::path guest = fs::path(guest_file("vmlinux")).parent_path();
  const ProcessResult r = run_process(
      {"sh", "-c",
       "cd '" + guest.string() + "' && exec env TMPDIR='" + sb.tmp + "' '" + husk_bin() +
           "' exec --jail --kernel vmlinux --initrd initramfs.cpio -- echo relative-ok"},
      kRunTimeoutS);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "relative-ok\n");
  check_nothing_left(sb);
}
