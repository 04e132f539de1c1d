// End-to-end: the real `husk exec` binary (cli/exec_command.cpp) against the
// real guest and its agent. Each TEST_CASE is one VM boot (about 5-20 s in
// the nested test host), so cases check several things per boot where that
// stays readable. What is checked: stdout byte-exact and apart from stderr,
// piped stdin, a 64 MiB stdout stream against a checksum the guest computed,
// exit codes, death by a signal, the cgroup limits (pids, memory), the wall
// deadline over a whole process tree, and a missing command.
#include <string>
#include <vector>

#include "tests/e2e/guest_session.h"

using namespace husk::test;

namespace {

// Seconds allowed for one `husk exec`: boot plus the command, generously.
constexpr double kExecTimeoutS = 300;

ProcessResult husk_exec(const std::vector<std::string>& options, const std::vector<std::string>& command,
                        const std::string& stdin_data = "") {
  std::vector<std::string> argv{husk_bin(), "exec", "--kernel", guest_file("vmlinux"), "--initrd",
                                guest_file("initramfs.cpio")};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return run_process(argv, kExecTimeoutS, stdin_data);
}

ProcessResult sh(const std::string& script, const std::vector<std::string>& options = {},
                 const std::string& stdin_data = "") {
  return husk_exec(options, {"sh", "-c", script}, stdin_data);
}

std::string random_text(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// The first word of sha256sum's output for `data`, computed on the host.
std::string host_sha256(const std::string& data) {
  const ProcessResult r = run_process({"sha256sum"}, 120, data);
  REQUIRE(r.exit_code == 0);
  return r.out.substr(0, r.out.find(' '));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("husk exec: stdout is exact, stderr is kept apart, exit 0", "[e2e][exec]") {
  const ProcessResult r = sh("echo hello; echo to-stderr >&2; printf 'no newline'");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello\nno newline");
  CHECK(contains(r.err, "to-stderr\n"));
  CHECK_FALSE(contains(r.out, "to-stderr"));
}

TEST_CASE("husk exec: piped stdin reaches the command byte for byte (1 MiB)", "[e2e][exec]") {
  const std::string data = random_text(1 << 20, 1);
  const ProcessResult r = husk_exec({}, {"cat"}, data);
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == data.size());
  CHECK(r.out == data);
}

TEST_CASE("husk exec: 64 MiB of stdout arrive intact (guest-side sha256)", "[e2e][exec]") {
  // The guest writes random bytes to a file, sends their checksum on stderr
  // and the bytes on stdout; the host hashes what it received.
  const ProcessResult r = sh(
      "head -c 67108864 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob",
      {"--memory", "512"});
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  REQUIRE(r.out.size() == 67108864u);
  const std::string guest_sum = r.err.substr(0, r.err.find(' '));
  REQUIRE(guest_sum.size() == 64);
  CHECK(host_sha256(r.out) == guest_sum);
}

TEST_CASE("husk exec: the command's exit status is husk's", "[e2e][exec]") {
  for (int code : {1, 7, 255}) {
    DYNAMIC_SECTION("exit " << code) {
      const ProcessResult r = sh("echo before-exit; exit " + std::to_string(code));
      INFO("stderr: " << r.err);
      REQUIRE_FALSE(r.timed_out);
      CHECK(r.exit_code == code);
      CHECK(r.out == "before-exit\n");
    }
  }
}

TEST_CASE("husk exec: death by a signal is 128+N with the signal named on stderr", "[e2e][exec]") {
  const ProcessResult r = sh("echo alive; kill -SEGV $$");
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 128 + 11);
  CHECK(r.out == "alive\n");
  CHECK(contains(r.err, "signal 11"));
}

TEST_CASE("husk exec: a fork bomb is held by --pids-limit", "[e2e][exec]") {
  // Every process forks a copy of itself in the background and recurses:
  // growth stops at pids.max, the leader's fork fails and the shell exits
  // non-zero, and the agent kills what is left of the tree. --timeout is
  // only a safety net: the reason must be the pids limit, not the deadline.
  const ProcessResult r = sh("b() { b & b; }; b", {"--pids-limit", "32", "--timeout", "120"});
  INFO("stderr: " << r.err.substr(0, 4000));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 125);  // husk itself and the VM survived
  CHECK(contains(r.err, "husk: pids-limit"));
  CHECK_FALSE(contains(r.err, "wall-timeout"));
}

TEST_CASE("husk exec: a memory hog is stopped by --memory-limit and reported", "[e2e][exec]") {
  // dd allocates its 200 MiB block at once; the job's cgroup allows 32 MiB.
  const ProcessResult r = sh("dd if=/dev/zero bs=200M count=1 | cat > /dev/null",
                             {"--memory", "512", "--memory-limit", "32"});
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 125);
  CHECK(contains(r.err, "husk: memory-limit"));
}

TEST_CASE("husk exec: --timeout kills the whole process tree, grandchildren too", "[e2e][exec]") {
  // A background child and an orphaned grandchild (the subshell exits at
  // once) both hold stdout open: the job only ends when all of them die.
  const ProcessResult r = sh("sleep 100 & (sleep 100 &); echo started; sleep 100", {"--timeout", "2", "-v"});
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 128 + 9);
  CHECK(r.out == "started\n");
  CHECK(contains(r.err, "husk: wall-timeout"));
  // Boot plus a 2 s deadline, far from the 100 s the sleeps would take.
  CHECK(r.seconds < 90);
}

TEST_CASE("husk exec: a command that does not exist is 127", "[e2e][exec]") {
  const ProcessResult r = husk_exec({}, {"no-such-command-here", "arg"});
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 127);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "no-such-command-here"));
}
