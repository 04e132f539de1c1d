// End-to-end, the real guest: what issue 10 asks of the agent and the
// initramfs. Every busybox applet is there (`echo data | husk exec --
// sha256sum`, `true`, `find -print0`, `diff`, `cmp`, `timeout`, /usr/bin/env);
// a command line of 100000 arguments goes through `husk exec` (split into
// ExecArgs frames on the way); one past the agent's bound is refused on the
// host with a clear error and the session goes on; the open_files and
// file_size limits hold in the guest.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "guest-agent/protocol/exec_args.h"
#include "runtime/agent/vm_session.h"
#include "tests/e2e/guest_session.h"

using namespace husk;
using namespace husk::test;

namespace {

constexpr double kExecTimeoutS = 300;

ProcessResult husk_exec(const std::vector<std::string>& command, const std::string& stdin_data = "") {
  std::vector<std::string> argv{husk_bin(), "exec", "--kernel", guest_file("vmlinux"), "--initrd",
                                guest_file("initramfs.cpio"), "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  return run_process(argv, kExecTimeoutS, stdin_data);
}

struct Job {
  agent::ExecResult result;
  std::string out;
  std::string err;
};

Result<Job> run(agent::AgentClient& client, agent::ExecRequest req) {
  req.env.push_back("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
  Job job;
  agent::ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) { job.out.append(d); };
  cb.on_stderr = [&](std::string_view d) { job.err.append(d); };
  HUSK_TRY_ASSIGN(job.result, client.exec(req, cb));
  return job;
}

agent::ExecRequest sh(const std::string& script) {
  agent::ExecRequest req;
  req.argv = {"sh", "-c", script};
  return req;
}

}  // namespace

TEST_CASE("husk exec: every busybox applet is in the default guest", "[e2e][exec]") {
  const ProcessResult sum = husk_exec({"sha256sum"}, "data\n");
  INFO("stderr: " << sum.err);
  CHECK(sum.exit_code == 0);
  // sha256 of "data\n".
  CHECK(sum.out == "6667b2d1aab6a00caa5aee5af8ad9f1465e567abf1c209d15727d57b3e8f6e5f  -\n");

  const ProcessResult r = husk_exec(
      {"sh", "-c",
       "set -e; true; mkdir -p /tmp/d/e; echo a > /tmp/d/x; echo b > /tmp/d/e/y; "
       "find /tmp/d -type f -print0 | sort -z | tr '\\0' ' '; echo; "
       "diff /tmp/d/x /tmp/d/x; cmp /tmp/d/x /tmp/d/x; ! cmp -s /tmp/d/x /tmp/d/e/y; "
       "timeout 5 true; ! timeout 1 sleep 3; /usr/bin/env true; "
       "n=0; for a in $(busybox --list); do [ $a = linuxrc ] || command -v $a >/dev/null || { echo missing $a; n=1; }; done; "
       "test $n = 0; echo applets ok"});
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "/tmp/d/e/y /tmp/d/x \napplets ok\n");
}

TEST_CASE("husk exec: 100000 arguments reach the command", "[e2e][exec]") {
  std::vector<std::string> command{"sh", "-c", "echo $#; echo ${100000}", "sh"};
  for (int i = 1; i <= 100000; ++i) command.push_back(std::to_string(i));
  const ProcessResult r = husk_exec(command);
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "100000\n100000\n");
}

TEST_CASE("agent in the guest: argv and env past one frame, the bound, open_files and file_size",
          "[e2e][agent]") {
  vmm::VmConfig config;
  config.kernel_path = guest_file("vmlinux");
  config.initrd_path = guest_file("initramfs.cpio");
  config.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  config.memory_mib = 256;
  auto started = agent::VmSession::start(config, agent::SessionOptions{});
  INFO((started ? "" : started.error().message));
  REQUIRE(started);
  std::unique_ptr<agent::VmSession> session = std::move(*started);
  agent::AgentClient& client = session->agent();
  client.set_call_timeout(std::chrono::seconds(120));

  // argv and env of about 1.3 MiB (Linux's default limit is 2 MiB).
  agent::ExecRequest big = sh("echo $#; echo ${#BIG}; env | grep -c '^V'");
  big.argv.push_back("sh");
  for (int i = 0; i < 50000; ++i) big.argv.push_back("argument-" + std::to_string(i));
  for (int i = 0; i < 3000; ++i) big.env.push_back("V" + std::to_string(i) + "=" + std::string(64, 'v'));
  big.env.push_back("BIG=" + std::string(100000, 'b'));
  auto job = run(client, big);
  INFO((job ? job->err : job.error().message));
  REQUIRE(job);
  CHECK(job->result.exit.exit_code == 0);
  CHECK(job->out == "50000\n100000\n3000\n");

  // Past the bound: refused here before anything is sent; the session goes on.
  agent::ExecRequest huge = sh("true");
  for (int i = 0; i < 9; ++i) huge.argv.push_back(std::string(1u << 20, 'a'));
  job = run(client, huge);
  REQUIRE_FALSE(job);
  CHECK(job.error().code == E2BIG);
  CHECK(job.error().message.find("at most " + std::to_string(agent::proto::kMaxExecArgBytes)) !=
        std::string::npos);

  agent::ExecRequest nofile = sh("ulimit -n; exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null && echo opened");
  nofile.limits.open_files = 5;
  job = run(client, nofile);
  REQUIRE(job);
  CHECK(job->out == "5\n");
  CHECK(job->result.exit.exit_code != 0);

  agent::ExecRequest fsize = sh("exec head -c 1000000 /dev/zero > /tmp/big");
  fsize.limits.file_size = 65536;
  job = run(client, fsize);
  REQUIRE(job);
  CHECK(job->result.exit.signal == SIGXFSZ);
  job = run(client, sh("stat -c %s /tmp/big"));
  REQUIRE(job);
  CHECK(job->out == "65536\n");

  auto vm = session->finish();
  REQUIRE(vm);
}
