// husk-oci exec through the real clients: `ctr task exec` (containerd's
// shim calls `exec --process F --detach --pid-file P`) and `podman exec`
// (conmon, the same flags), each a second process in a running container's
// VM on its own agent connection. Each case checks the exec's output and
// exit status, that the container's own process runs on after it, and
// that the exec's end leaves the container as it was.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/e2e/oci/oci_lab.h"

namespace husk::test::oci {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("oci ctr: task exec runs a second process in the container's VM", "[e2e][oci]") {
  Containerd& lab = Containerd::get();
  INFO("containerd log:\n" << lab.log());
  const ProcessResult started = lab.ctr(lab.run_args("execd", {"-d"}, {"sleep", "300"}));
  INFO("ctr stderr: " << started.err << "\nruntime calls:\n" << lab.calls());
  REQUIRE(started.exit_code == 0);

  // Output, stderr and the exit status of the exec'd process; it sees the
  // container's root and its process (the guest's ps through busybox).
  const ProcessResult exec = lab.ctr({"task", "exec", "--exec-id", "e1", "execd", "sh", "-c",
                                      "echo in-exec; echo exec-err >&2; ls /proc/1 >/dev/null && exit 5"});
  INFO("exec: " << exec.out << exec.err << "\nruntime calls:\n" << lab.calls());
  CHECK(exec.out == "in-exec\n");
  CHECK(contains(exec.err, "exec-err"));
  CHECK(exec.exit_code == 5);
  // A second one, with stdin, while the first is gone.
  const ProcessResult piped = lab.ctr({"task", "exec", "--exec-id", "e2", "execd", "head", "-n1"}, "through stdin\n");
  INFO("exec with stdin: " << piped.out << piped.err);
  CHECK(piped.out == "through stdin\n");
  CHECK(piped.exit_code == 0);
  // The container's process is still running.
  CHECK(contains(lab.ctr({"task", "ls"}).out, "RUNNING"));

  CHECK(lab.ctr({"task", "kill", "-s", "SIGKILL", "execd"}).exit_code == 0);
  CHECK(wait_until([&] { return contains(lab.ctr({"task", "ls"}).out, "STOPPED"); }, 60, 500));
  CHECK(lab.ctr({"task", "delete", "execd"}).exit_code == 0);
  CHECK(lab.ctr({"containers", "rm", "execd"}).exit_code == 0);
  std::vector<std::string> left;
  CHECK(wait_until(
      [&] {
        left = lab.leftovers(lab.pid());
        return left.empty();
      },
      30));
  CAPTURE(left);
}

TEST_CASE("oci podman: exec runs a second process in the container's VM", "[e2e][oci]") {
  Podman& lab = Podman::get();
  const ProcessResult started =
      lab.podman({"run", "-d", "--name", "execd", "--network", "none", kImage, "sleep", "300"});
  INFO("podman stderr: " << started.err << "\nruntime calls:\n" << lab.calls());
  REQUIRE(started.exit_code == 0);

  const ProcessResult exec = lab.podman({"exec", "execd", "sh", "-c", "echo in-exec; exit 4"});
  INFO("exec: " << exec.out << exec.err << "\nruntime calls:\n" << lab.calls());
  CHECK(exec.out == "in-exec\n");
  CHECK(exec.exit_code == 4);
  const ProcessResult piped = lab.podman({"exec", "-i", "execd", "cat"}, "one\ntwo\n");
  INFO("exec -i: " << piped.out << piped.err);
  CHECK(piped.out == "one\ntwo\n");
  CHECK(piped.exit_code == 0);

  CHECK(lab.podman({"rm", "-f", "execd"}).exit_code == 0);
  std::vector<std::string> left;
  CHECK(wait_until(
      [&] {
        left = lab.leftovers(-1);
        return left.empty();
      },
      30));
  CAPTURE(left);
  CHECK(lab.podman({"ps", "-aq"}).out.empty());
}

}  // namespace husk::test::oci
