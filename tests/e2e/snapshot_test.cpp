// Snapshots and warm starts (issue 13) with the real guest: the same jobs
// run cold and warm give the same verdicts, limits and outputs; two VMs
// restored from one snapshot draw different random numbers, see the host's
// time and share nothing a job wrote; the cache makes one snapshot per
// configuration, reuses it, and makes a damaged one again; an explicit
// snapshot of another configuration or a damaged one is refused before any
// VM runs; nothing is left behind.
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include "runtime/agent/vm_session.h"
#include "runtime/common/unique_fd.h"
#include "tests/e2e/agent_support.h"
#include "tests/e2e/run_support.h"

using namespace husk;
using namespace husk::test;
using namespace husk::test::run;

namespace {

// The job's [process] run.
const json& process_run(const json& result) {
  const json& steps = result.at("steps");
  REQUIRE_FALSE(steps.empty());
  return steps.back();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<fs::path> cache_entries(const std::string& cache) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(cache, ec)) {
    if (e.is_directory()) out.push_back(e.path());
  }
  return out;
}

// What of a run must be the same cold and warm (times and memory peaks
// may differ).
json comparable(const json& run) {
  json out;
  for (const char* key : {"name", "kind", "verdict", "exit_code", "signal", "stdout", "stderr", "stdout_truncated"}) {
    if (run.contains(key)) out[key] = run.at(key);
  }
  // Concurrent writers' lines interleave as they race, in every VM.
  if (run.value("name", "") == "fork-bomb") out.erase("stderr");
  if (run.contains("message")) {
    // A limit's message names the limit, not a time.
    out["message_kind"] = run.at("message").get<std::string>().substr(0, 12);
  }
  return out;
}

}  // namespace

TEST_CASE("warm start: jobs give the same verdicts, limits and outputs cold and warm; one snapshot per config",
          "[e2e][snapshot]") {
  Sandbox sb;
  const std::string cache = sb.dir.file("snapshots");
  const std::vector<std::string> warm{"--warm", "--snapshot-cache", cache};
  for (const std::string& job : {job_path("verdicts.toml"), job_path("judge/judge.toml")}) {
    CAPTURE(job);
    const HuskRun cold = husk_run(sb, job);
    const HuskRun hot = husk_run(sb, job, warm);
    REQUIRE(cold.result.is_object());
    REQUIRE(hot.result.is_object());
    INFO("cold: " << brief(cold.result) << "\nwarm: " << brief(hot.result));
    CHECK(hot.proc.exit_code == cold.proc.exit_code);
    CHECK(cold.result.at("timeline").at("start") == "boot");
    CHECK(hot.result.at("timeline").at("start") == "snapshot");
    CHECK(str(hot.result, "verdict") == str(cold.result, "verdict"));
    for (const char* kind : {"steps", "cases"}) {
      const json& a = cold.result.at(kind);
      const json& b = hot.result.at(kind);
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) CHECK(comparable(b[i]) == comparable(a[i]));
    }
  }
  // The two jobs share their [vm]: one snapshot for both.
  CHECK(cache_entries(cache).size() == 1);

  // Reused: the next warm run restores the same snapshot, untouched.
  const fs::path state = cache_entries(cache).at(0) / "state";
  const auto made_at = fs::last_write_time(state);
  const HuskRun again = husk_run(sb, job_path("judge/judge.toml"), {"--warm", "--snapshot-cache", cache, "-v"});
  CHECK(contains(again.proc.err, "restoring the VM from its snapshot"));
  CHECK(fs::last_write_time(state) == made_at);
  CHECK(cache_entries(cache).size() == 1);

  // Another configuration is another snapshot.
  const HuskRun bigger = husk_run(sb, job_path("judge/judge.toml"), {"--warm", "--snapshot-cache", cache, "--memory", "320"});
  CHECK(str(bigger.result, "verdict") == "WA");
  CHECK(cache_entries(cache).size() == 2);
  check_nothing_left(sb);
}

TEST_CASE("warm start: restored VMs get fresh randomness, the host's time and nothing of each other", "[e2e][snapshot]") {
  Sandbox sb;
  const std::string cache = sb.dir.file("snapshots");
  const std::vector<std::string> warm{"--warm", "--snapshot-cache", cache};
  const std::string job = job_path("warm_fresh.toml");
  REQUIRE(husk_run(sb, job, warm).proc.exit_code == 0);  // makes the snapshot
  // The snapshot ages a little: a restored guest's clock must not lag.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  std::vector<std::vector<std::string>> outputs;
  for (int i = 0; i < 2; ++i) {
    const HuskRun run = husk_run(sb, job, warm);
    REQUIRE(run.result.is_object());
    INFO(brief(run.result));
    REQUIRE(str(run.result, "verdict") == "OK");
    const auto lines = lines_of(str(process_run(run.result), "stdout"));
    REQUIRE(lines.size() == 4);
    const long guest_time = std::stol(lines[1]);
    const long host_time = static_cast<long>(std::time(nullptr));
    CHECK(std::labs(host_time - guest_time) <= 5);
    CHECK(lines[3] == "no-marker");  // the previous VM's file is not here
    outputs.push_back(lines);
  }
  CHECK(outputs[0][0].size() == 32);
  CHECK(outputs[0][0] != outputs[1][0]);  // /dev/urandom
  CHECK(outputs[0][2] != outputs[1][2]);  // a kernel uuid
  check_nothing_left(sb);
}

TEST_CASE("snapshot create --out and husk run --snapshot; damaged and foreign snapshots are refused or made again",
          "[e2e][snapshot]") {
  Sandbox sb;
  const std::string job = job_path("warm_fresh.toml");
  const std::string out = sb.dir.file("snap");
  const std::vector<std::string> guest{"--kernel", guest_file("vmlinux"), "--initrd", guest_file("initramfs.cpio")};
  std::vector<std::string> create{"env", "TMPDIR=" + sb.tmp, husk_bin(), "snapshot", "create", job, "--out", out};
  create.insert(create.end(), guest.begin(), guest.end());
  const ProcessResult made = run_process(create, kRunTimeoutS);
  INFO("snapshot create: " << tail(made.err));
  REQUIRE(made.exit_code == 0);
  CHECK(contains(made.out, out));
  REQUIRE(fs::exists(out + "/state"));
  REQUIRE(fs::exists(out + "/memory"));
  // The memory file is the guest's RAM, but only what it touched is stored.
  CHECK(fs::file_size(out + "/memory") == 256ull << 20);
  struct stat st{};
  REQUIRE(::stat((out + "/memory").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < (256ull << 20) / 2);

  const HuskRun restored = husk_run(sb, job, {"--snapshot", out});
  CHECK(str(restored.result, "verdict") == "OK");

  // Another configuration: refused, naming what differs, nothing boots.
  const HuskRun other = husk_run(sb, job, {"--snapshot", out, "--memory", "320"});
  CHECK(other.proc.exit_code != 0);
  CHECK(contains(str(other.result, "message"), "memory_mib"));

  // A damaged state file: refused whole.
  {
    std::fstream state(out + "/state", std::ios::in | std::ios::out | std::ios::binary);
    state.seekp(-20, std::ios::end);
    state.put('\x5a');
  }
  const HuskRun damaged = husk_run(sb, job, {"--snapshot", out});
  CHECK(damaged.proc.exit_code != 0);
  CHECK(contains(str(damaged.result, "message"), "checksum"));

  // In the cache, a damaged snapshot is made again.
  const std::string cache = sb.dir.file("snapshots");
  REQUIRE(husk_run(sb, job, {"--warm", "--snapshot-cache", cache}).proc.exit_code == 0);
  const auto entries = cache_entries(cache);
  REQUIRE(entries.size() == 1);
  {
    std::fstream state(entries[0] / "state", std::ios::in | std::ios::out | std::ios::binary);
    state.seekp(-20, std::ios::end);
    state.put('\x5a');
  }
  // A killed husk's half-made snapshot of the same entry: swept then.
  const fs::path stale = entries[0].string() + ".tmp-1";
  fs::create_directories(stale);
  std::ofstream(stale / "memory") << "half";
  const HuskRun remade = husk_run(sb, job, {"--warm", "--snapshot-cache", cache});
  CHECK(str(remade.result, "verdict") == "OK");
  CHECK(contains(remade.proc.err, "made again"));
  CHECK_FALSE(fs::exists(stale));
  check_nothing_left(sb);
}

TEST_CASE("VmSession: a running VM's snapshot (it runs on), restored twice at once, each as it was", "[e2e][snapshot]") {
  TempDir dir;
  vmm::VmConfig config;
  config.kernel_path = guest_file("vmlinux");
  config.initrd_path = guest_file("initramfs.cpio");
  config.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  config.rng = true;
  UniqueFd state(::open(dir.file("state").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  UniqueFd memory(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(state);
  REQUIRE(memory);
  vmm::VmConfig saved_config = config;
  saved_config.save_to = vmm::SnapshotFds{state.get(), memory.get()};
  saved_config.snapshot_description = "test=1\n";
  auto original = agent::VmSession::start(saved_config, agent::SessionOptions{});
  INFO((original ? "" : original.error().message));
  REQUIRE(original);
  agent::AgentClient& client = (*original)->agent();
  REQUIRE(run_sh(client, "echo before > /tmp/before").result.exit.exit_code == 0);
  const Job uptime_then = run_sh(client, "cut -d' ' -f1 /proc/uptime");

  auto saved = (*original)->vmm().snapshot(std::chrono::seconds(60));
  INFO((saved ? *saved : saved.error().message));
  REQUIRE(saved);
  CHECK(contains(*saved, "state "));
  // It ran on: paused for the save, then resumed with its connection.
  const Job after = run_sh(client, "cat /tmp/before; echo after > /tmp/after; echo resumed");
  CHECK(after.out == "before\nresumed\n");
  CHECK((*original)->finish());

  // Two VMs from the snapshot at once, each with the guest as it was at
  // the snapshot: /tmp/before there, /tmp/after (written later) not.
  agent::SessionOptions restore;
  restore.restore = agent::RestoreSource{dir.file("state"), dir.file("memory")};
  auto first = agent::VmSession::start(config, restore);
  INFO((first ? "" : first.error().message));
  REQUIRE(first);
  auto second = agent::VmSession::start(config, restore);
  INFO((second ? "" : second.error().message));
  REQUIRE(second);
  for (auto* vm : {&*first, &*second}) {
    const Job j = run_sh((*vm)->agent(), "cat /tmp/before; ls /tmp/after 2>/dev/null || echo no-after; "
                                         "cut -d' ' -f1 /proc/uptime; echo $$ > /tmp/mine; cat /tmp/mine");
    const auto lines = lines_of(j.out);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "before");
    CHECK(lines[1] == "no-after");
    // The guest's clock went on from the snapshot: no leap for the time
    // the snapshot waited (a few seconds here).
    const double then = std::stod(uptime_then.out);
    const double now = std::stod(lines[2]);
    CHECK(now >= then);
    CHECK(now < then + 60);
  }
  CHECK((*first)->finish());
  CHECK((*second)->finish());
}
