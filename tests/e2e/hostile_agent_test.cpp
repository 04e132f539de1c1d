// End-to-end, a job turned against its own guest agent (issue 11): the real
// husk, the real guest kernel and agent, and a guest program that attacks
// the agent from inside (tests/e2e/guest/agent_attack.c, built here with
// cc -static and uploaded with [[files]] or added to the initramfs).
//
// The agent is PID 1. A job runs as root, so through ptrace(2) it can kill
// PID 1 (a kernel-sent SIGKILL: the guest kernel panics), stop it (SIGSTOP),
// or stop it and take over its connection to the host (pidfd_getfd) to send
// the host garbage or a frame that drips in a byte a second. Through vsock
// loopback it can connect to the agent's own port. And a root disk may bring
// its own /sbin/husk-agent, which the initramfs runs in the agent's place.
// For each, husk must end within the job's time limit (or the agent's call
// deadlines) plus a bounded grace, with a clear verdict and message, and
// leave nothing behind (no husk-vm-* folder, no process).
//
// Each case is one VM boot (3-4 s in the nested test host) plus the deadline
// it proves (up to 10 s, AgentClient::kDefaultCallTimeout); all of them run
// in one test-host session with the rest of the e2e tier.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/run_support.h"

using namespace husk::test;
using namespace husk::test::run;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The host's deadlines these cases prove (AgentClient::kDefaultCallTimeout
// and kExitGrace); and how late husk may end past them on a loaded machine
// (stopping the VM, writing the result).
constexpr double kCallS = 10;
constexpr double kExitGraceS = 5;
constexpr double kSlackS = 10;

// agent_attack, built once per test program.
const std::string& attack_tool() {
  static TempDir dir;
  static const std::string tool = [] {
    const std::string out = dir.file("agent_attack");
    const ProcessResult cc =
        run_process({"cc", "-static", "-O2", "-o", out, (kE2eDir / "guest" / "agent_attack.c").string()}, 180);
    INFO("cc: " << cc.err);
    REQUIRE(cc.exit_code == 0);
    return out;
  }();
  return tool;
}

// A job file in the sandbox: `body` after the version and the upload of
// agent_attack to /work/agent_attack.
std::string write_job(const Sandbox& sb, const std::string& name, const std::string& body) {
  const std::string path = sb.dir.file(name + ".toml");
  std::ofstream(path) << "version = 1\n\n[[files]]\nsource = \"" << attack_tool()
                      << "\"\ndestination = \"/work/agent_attack\"\nmode = \"0755\"\n\n"
                      << body;
  return path;
}

double seconds_between(const json& run) {
  return (run.at("end_ms").get<double>() - run.at("start_ms").get<double>()) / 1000;
}

// The time from the agent's answer to the end of the job, from the result.
double after_boot_s(const json& res) {
  return (res.at("timeline").at("end_ms").get<double>() - res.at("timeline").at("agent_ready_ms").get<double>()) /
         1000;
}

}  // namespace

TEST_CASE("hostile agent: a guest program that connects to the agent over vsock loopback is refused, and the "
          "host's job goes on",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  // CID 1 is VMADDR_CID_LOCAL; 3 is the guest's own CID (husk's default).
  // Without the agent's check the first connection would replace the
  // host's, and this very job would be killed with it.
  const std::string job = write_job(sb, "loopback", R"(
[[steps]]
name = "loopback-local"
run = "/work/agent_attack loopback 1 52"
timeout = "30s"

[[steps]]
name = "loopback-own-cid"
run = "/work/agent_attack loopback 3 52"
timeout = "30s"

[[steps]]
name = "still-served"
run = "echo still-served"
timeout = "30s"
)");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"loopback-local", "loopback-own-cid", "still-served"});
  for (const char* name : {"loopback-local", "loopback-own-cid"}) {
    const json& s = run_named(res.at("steps"), name);
    INFO(name << " stdout: " << str(s, "stdout"));
    CHECK(str(s, "verdict") == "OK");  // exit 0: refused without an answer
    CHECK(contains(str(s, "stdout"), "refused: CID"));
    CHECK(contains(str(s, "stdout"), "without an answer"));
  }
  CHECK(str(run_named(res.at("steps"), "still-served"), "stdout") == "still-served\n");
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a job that kills the agent (PID 1) ends the job at once: XX, lost the guest agent",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  const std::string job = write_job(sb, "kill", R"(
[[steps]]
name = "kill"
run = "/work/agent_attack kill"
timeout = "60s"

[[steps]]
name = "never"
run = "echo never-ran"
)");
  // The human result: it carries the console's last lines.
  const HuskRun run = husk_run(sb, job, {}, "", -1, 0, /*json_result=*/false);
  INFO("stderr: " << tail(run.proc.err, 4000));
  CHECK(run.proc.exit_code == 1);
  CHECK(contains(run.proc.err, "husk: XX"));
  CHECK(contains(run.proc.err, "lost the guest agent"));
  // The guest kernel says why: its init was killed.
  CHECK(contains(run.proc.err, "Attempted to kill init"));
  CHECK_FALSE(contains(run.proc.out, "never-ran"));
  CHECK_FALSE(contains(run.proc.err, "never-ran"));
  // Long before the step's 60 s: the VM reset, and husk saw it at once.
  CHECK(run.proc.seconds < 45);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: `husk exec --timeout` holds when the command stops the agent (SIGSTOP)",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  // The initramfs with /bin/agent_attack added (concatenated archives are
  // one initramfs to the kernel).
  const std::string staging = sb.dir.file("tools-root");
  fs::create_directories(staging + "/bin");
  fs::copy_file(attack_tool(), staging + "/bin/agent_attack");
  const std::string initrd = sb.dir.file("initrd.gz");
  REQUIRE(shell("cd '" + staging + "' && find . | cpio -o -H newc 2>/dev/null | gzip > '" + sb.dir.file("tools.gz") +
                "' && cat '" + guest_file("initramfs.cpio") + "' '" + sb.dir.file("tools.gz") + "' > '" + initrd +
                "'") == 0);
  constexpr double kTimeoutS = 3;
  const ProcessResult r =
      run_process({"env", "TMPDIR=" + sb.tmp, husk_bin(), "exec", "--kernel", guest_file("vmlinux"), "--initrd", initrd,
                   "--timeout", "3", "-v", "--", "/bin/agent_attack", "stop"},
                  kRunTimeoutS);
  INFO("stdout: " << r.out << "\nstderr: " << tail(r.err, 3000));
  REQUIRE_FALSE(r.timed_out);
  // The agent never enforced the limit (it was stopped): the host did, at
  // the wall limit plus kExitGrace, and says so as the agent would have.
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(contains(r.err, "wall-timeout"));
  CHECK(contains(r.err, "no answer from the guest"));
  // Boot (seconds) + the limit + the grace, not later.
  CHECK(r.seconds < 60);
  CHECK(r.seconds >= kTimeoutS + kExitGraceS);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a job that stops the agent as it reads the host's Shutdown: XX at the call deadline",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  // The step leaves the job (its cgroup and session), ptraces PID 1 and
  // ends; the agent reports it, then stops for good as it reads the next
  // request of type 18 (Shutdown). Every run was OK: only the Shutdown is
  // left unanswered.
  const std::string job = write_job(sb, "stop_at_shutdown", R"(
[[steps]]
name = "arm"
run = "/work/agent_attack -b 0 stop-on 18"
timeout = "30s"
)");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "XX");
  CHECK(contains(str(res, "message"), "did not shut down"));
  CHECK(contains(str(res, "message"), "Shutdown: no answer within 10000 ms"));
  const json& arm = run_named(res.at("steps"), "arm");
  CHECK(str(arm, "verdict") == "OK");
  CHECK(contains(str(arm, "stdout"), "armed"));
  // The Shutdown's deadline, then the VM stopped at once.
  CHECK(after_boot_s(res) >= kCallS);
  CHECK(after_boot_s(res) < kCallS + kSlackS);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a job that stops the agent as it reads a ReadFile for [outputs]: XX at the call deadline",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  const std::string job = write_job(sb, "stop_at_outputs", R"(
[[steps]]
name = "arm"
run = "echo data > /work/out.txt && /work/agent_attack -b 0 stop-on 24"
timeout = "30s"

[outputs]
paths = ["/work/out.txt"]
dir = "out"
)");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "XX");
  CHECK(contains(str(res, "message"), "outputs: /work/out.txt"));
  CHECK(contains(str(res, "message"), "ReadFile: no answer within 10000 ms"));
  CHECK(str(run_named(res.at("steps"), "arm"), "verdict") == "OK");
  CHECK(res.at("files").empty());
  // One call's deadline; the Shutdown after it is not sent to an agent
  // that has not answered (the VM is stopped at once).
  CHECK(after_boot_s(res) >= kCallS);
  CHECK(after_boot_s(res) < kCallS + kSlackS);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a job that takes over the agent's connection and sends garbage: XX at once",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  const std::string job = write_job(sb, "steal_garbage", R"(
[[steps]]
name = "steal"
run = "/work/agent_attack steal garbage"
timeout = "60s"

[[steps]]
name = "never"
run = "echo never-ran"
)");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "XX");
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"steal"});
  const json& s = res.at("steps")[0];
  CHECK(str(s, "verdict") == "XX");
  CHECK(contains(str(s, "message"), "lost the guest agent"));
  CHECK(contains(str(s, "message"), "frame too large"));
  // Not the step's 60 s, nor a call deadline: the garbage ends it at once.
  CHECK(seconds_between(s) < kSlackS);
  CHECK(after_boot_s(res) < kSlackS);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a job that takes over the agent's connection and drips a frame, in a run without a "
          "time limit: XX at the frame deadline",
          "[e2e][hostile_agent]") {
  Sandbox sb;
  // No timeout: the run itself may last forever, but a frame, once begun,
  // must be whole within the call timeout; a byte a second never is.
  const std::string job = write_job(sb, "steal_drip", R"(
[[steps]]
name = "steal"
run = "/work/agent_attack steal drip"

[[steps]]
name = "never"
run = "echo never-ran"
)");
  const HuskRun run = husk_run(sb, job);
  const json& res = run.result;
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(run.proc.exit_code == 1);
  CHECK(str(res, "verdict") == "XX");
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"steal"});
  const json& s = res.at("steps")[0];
  CHECK(str(s, "verdict") == "XX");
  CHECK(contains(str(s, "message"), "lost the guest agent"));
  CHECK(contains(str(s, "message"), "not complete 10000 ms after its first byte"));
  CHECK(seconds_between(s) >= kCallS);
  CHECK(seconds_between(s) < kCallS + kSlackS);
  CHECK(after_boot_s(res) < kCallS + kSlackS);
  check_nothing_left(sb);
}

TEST_CASE("hostile agent: a root disk whose agent never answers or drips its Hello: XX at boot_timeout",
          "[e2e][hostile_agent]") {
  for (const char* mode : {"silent", "drip"}) {
    DYNAMIC_SECTION("fake agent: " << mode) {
      Sandbox sb;
      // A root disk with its own /sbin/husk-agent, which the initramfs runs
      // as PID 1 in the agent's place: agent_attack fake-agent.
      const std::string root = sb.dir.file("root");
      fs::create_directories(root + "/sbin");
      fs::copy_file(attack_tool(), root + "/sbin/husk-agent");
      std::ofstream(root + "/husk-fake-agent") << mode << "\n";
      const std::string disk = sb.dir.file("fake.ext4");
      const ProcessResult mk = run_process({(source_root() / "rootfs" / "disk" / "mkext4").string(), disk, root}, 120);
      INFO("mkext4: " << mk.err);
      REQUIRE(mk.exit_code == 0);
      constexpr double kBootTimeoutS = 15;
      const std::string job = sb.dir.file("fake.toml");
      std::ofstream(job) << "version = 1\n\n[vm]\nroot_disk = \"" << disk << "\"\nboot_timeout = \"15s\"\n\n"
                         << "[process]\nrun = \"echo never-ran\"\n";
      const HuskRun run = husk_run(sb, job);
      const json& res = run.result;
      REQUIRE(res.is_object());
      INFO("result: " << brief(res));
      CHECK(run.proc.exit_code == 1);
      CHECK(str(res, "verdict") == "XX");
      CHECK(contains(str(res, "message"), "did not start"));
      CHECK(contains(str(res, "message"), "boot_timeout (15000 ms)"));
      CHECK(contains(str(res, "message"), "Hello"));
      CHECK(res.at("steps").empty());
      // boot_timeout counts from the VM's start, every retry included.
      CHECK(res.at("timeline").at("end_ms").get<double>() / 1000 >= kBootTimeoutS);
      CHECK(res.at("timeline").at("end_ms").get<double>() / 1000 < kBootTimeoutS + kSlackS);
      CHECK(run.proc.seconds < kBootTimeoutS + 2 * kSlackS);
      check_nothing_left(sb);
    }
  }
}
