// End-to-end: runtime/agent/VmSession and AgentClient against the real guest
// agent, in-process: file upload and download with checksums, stat, several
// jobs in one VM; a host client written by hand the way Firecracker users
// write one (Unix socket, "CONNECT 52", raw frames from the protocol spec);
// and a guest whose agent dies, which the host must report promptly with the
// VM stopped (in-process and through `husk exec`).
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/agent/vm_session.h"
#include "tests/e2e/agent_support.h"
#include "tests/e2e/guest_session.h"

using namespace husk;
using namespace husk::test;

namespace {

// Overwrites the agent's code (PID 1, static, so its text is one r-xp
// mapping) with zeros through /proc/1/mem; the agent faults the next time it
// runs (at the latest when this shell exits) and the kernel panics
// "Attempted to kill init!". `kill -9 1` cannot do this: the kernel drops
// SIGKILL sent to a namespace's init from inside it.
const char* const kKillAgentScript =
    "a=$(grep -m1 ' r-xp .*husk-agent' /proc/1/maps); s=${a%%-*}; e=${a#*-}; e=${e%% *}; "
    "dd if=/dev/zero of=/proc/1/mem bs=4096 seek=$((0x$s / 4096)) "
    "count=$(((0x$e - 0x$s) / 4096)) conv=notrunc 2>/dev/null";

std::unique_ptr<agent::VmSession> start_session(uint64_t memory_mib = 256) {
  vmm::VmConfig config;
  config.kernel_path = guest_file("vmlinux");
  config.initrd_path = guest_file("initramfs.cpio");
  config.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  config.memory_mib = memory_mib;
  auto session = agent::VmSession::start(config, agent::SessionOptions{});
  INFO((session ? "" : session.error().message));
  REQUIRE(session);
  // Every wait for the agent is bounded: a hang fails with ETIMEDOUT and the
  // call that hung, instead of stalling the whole suite.
  (*session)->agent().set_call_timeout(std::chrono::seconds(120));
  return std::move(*session);
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 32);
  }
  return s;
}

std::string host_sha256(const std::string& data) {
  const ProcessResult r = run_process({"sha256sum"}, 120, data);
  REQUIRE(r.exit_code == 0);
  return r.out.substr(0, 64);
}

// --- a hand-written client: bytes on the wire, no husk code -------------

void put_le(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Frame (wire.h): u32 length of what follows, u16 type, u32 id, payload.
std::vector<uint8_t> frame(uint16_t type, uint32_t id, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> f;
  put_le(f, 2 + 4 + payload.size(), 4);
  put_le(f, type, 2);
  put_le(f, id, 4);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// Hello (protocol.h): u16 major, u16 minor, u64 features.
std::vector<uint8_t> hello_payload(uint16_t major) {
  std::vector<uint8_t> p;
  put_le(p, major, 2);
  put_le(p, 0, 2);
  put_le(p, 0, 8);
  return p;
}

// Reads exactly n bytes within timeout_ms; fewer at end of stream or timeout.
std::vector<uint8_t> read_exact(int fd, size_t n, int timeout_ms) {
  std::vector<uint8_t> buf;
  while (buf.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) break;
    uint8_t tmp[4096];
    const ssize_t r = ::read(fd, tmp, std::min(sizeof(tmp), n - buf.size()));
    if (r <= 0) break;
    buf.insert(buf.end(), tmp, tmp + r);
  }
  return buf;
}

struct RawFrame {
  uint16_t type = 0;
  uint32_t id = 0;
  std::vector<uint8_t> payload;
};

bool read_frame(int fd, RawFrame& out) {
  const std::vector<uint8_t> len = read_exact(fd, 4, 30'000);
  if (len.size() != 4) return false;
  const uint64_t body = get_le(len.data(), 4);
  if (body < 6 || body > (1u << 20)) return false;
  const std::vector<uint8_t> b = read_exact(fd, body, 30'000);
  if (b.size() != body) return false;
  out.type = static_cast<uint16_t>(get_le(b.data(), 2));
  out.id = static_cast<uint32_t>(get_le(b.data() + 2, 4));
  out.payload.assign(b.begin() + 6, b.end());
  return true;
}

// Unix socket to the VM's vsock device, "CONNECT <port>\n", "OK <n>\n".
int firecracker_connect(const std::string& uds, uint32_t port, std::string& ok_line) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, uds.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string line = "CONNECT " + std::to_string(port) + "\n";
  REQUIRE(::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
  ok_line.clear();
  for (;;) {
    const std::vector<uint8_t> c = read_exact(fd, 1, 10'000);
    if (c.empty() || c[0] == '\n') break;
    ok_line.push_back(static_cast<char>(c[0]));
  }
  return fd;
}

bool write_bytes(int fd, const std::vector<uint8_t>& bytes) {
  // MSG_NOSIGNAL: a peer that hung up is a failed check, not SIGPIPE.
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

}  // namespace

TEST_CASE("VmSession: files up and down with checksums, stat, several jobs in one VM", "[e2e][agent]") {
  auto session = start_session();
  agent::AgentClient& client = session->agent();

  // Upload 4 MiB, checksum it in the guest, stat it, download it again.
  const std::string up = random_bytes(4 << 20, 1);
  REQUIRE(client.write_file("/tmp/in/upload.bin", up, 0640, /*mkdirs=*/true));
  // Through sh: this busybox has sha256sum as a shell applet, not a file.
  Job j = run_sh(client, "sha256sum /tmp/in/upload.bin");
  CHECK(j.result.started);
  CHECK(j.result.exit.exit_code == 0);
  CHECK(j.out.substr(0, 64) == host_sha256(up));
  auto st = client.stat("/tmp/in/upload.bin");
  REQUIRE(st);
  CHECK(S_ISREG(st->mode));
  CHECK((st->mode & 07777) == 0640);
  CHECK(st->size == up.size());
  auto dir = client.stat("/tmp/in");
  REQUIRE(dir);
  CHECK(S_ISDIR(dir->mode));
  auto down = client.read_file("/tmp/in/upload.bin", 0);
  REQUIRE(down);
  CHECK(down->size() == up.size());
  CHECK(*down == up);

  // A file the guest made, downloaded and checked against the guest's sum.
  j = run_sh(client, "head -c 3000001 /dev/urandom > /tmp/made.bin && sha256sum /tmp/made.bin");
  CHECK(j.result.exit.exit_code == 0);
  auto made = client.read_file("/tmp/made.bin", 0);
  REQUIRE(made);
  CHECK(made->size() == 3000001u);
  CHECK(host_sha256(*made) == j.out.substr(0, 64));
  // Limits and errors of the file calls.
  auto too_big = client.read_file("/tmp/made.bin", 1000);
  REQUIRE_FALSE(too_big);
  CHECK(too_big.error().code == EFBIG);
  auto missing = client.stat("/no/such/file");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ENOENT);

  // Several jobs, one after another, with env, cwd and stdin.
  for (int i = 1; i <= 5; ++i) {
    j = run_sh(client, "echo $((" + std::to_string(i) + " * 11)); exit " + std::to_string(i));
    CHECK(j.out == std::to_string(i * 11) + "\n");
    CHECK(j.result.exit.exit_code == i);
  }
  agent::ExecRequest env_req;
  env_req.argv = {"sh", "-c", "echo $GREETING; pwd; cat"};
  env_req.env = {"PATH=/bin:/sbin:/usr/bin", "GREETING=hi there"};
  env_req.cwd = "/tmp/in";
  env_req.stdin_mode = agent::proto::StdinMode::kData;
  env_req.stdin_data = "from stdin";
  j = exec_job(client, env_req);
  CHECK(j.out == "hi there\n/tmp/in\nfrom stdin");

  // A deadline kills the whole tree: nothing of it is left for the next job.
  agent::ExecRequest tree;
  tree.argv = {"sh", "-c", "sleep 100 & (sleep 100 &); sleep 100"};
  tree.limits.wall_ms = 1500;
  j = exec_job(client, tree);
  CHECK(j.result.exit.reason == agent::proto::ExitReason::kWallTimeout);
  j = run_sh(client, "ps -o pid,args | grep -c '[s]leep 100'");
  CHECK(j.out == "0\n");

  // SIGKILL to PID 1 from inside its namespace is dropped by the kernel:
  // the agent stays and serves the next job.
  j = run_sh(client, "kill -9 1; echo still-here");
  CHECK(j.out == "still-here\n");
  j = run_sh(client, "echo after");
  CHECK(j.out == "after\n");

  // The stock initramfs: the kernel started the agent as PID 1 (rdinit=, no
  // shell first), and the agent printed the ready marker /init would have.
  j = run_sh(client, "cat /proc/cmdline; tr '\\0' '\\n' </proc/1/cmdline | head -n1");
  INFO("guest: " << j.out);
  CHECK(j.out.find(" rdinit=/sbin/husk-agent") != std::string::npos);
  // The guest kernel's built-in command line (rootfs/kernel/husk.config)
  // comes first: the initramfs is unpacked in its own initcall, and a
  // one-vCPU kernel keeps its LOCK prefixes instead of patching them out.
  CHECK(j.out.rfind("initramfs_async=0 noreplace-smp ", 0) == 0);
  CHECK(j.out.find("\n/sbin/husk-agent\n") != std::string::npos);
  std::ostringstream console;
  console << std::ifstream(session->console_path()).rdbuf();
  INFO("console: " << console.str());
  CHECK(std::regex_search(console.str(), std::regex(R"(HUSK_READY uptime=[0-9]+\.[0-9]+ cpus=1\r?\n)")));

  auto vm = session->finish();
  REQUIRE(vm);
  CHECK(vm->reason == vmm::ExitReason::kGuestReset);
}

TEST_CASE("a hand-written Firecracker-style client: CONNECT 52 and a raw Hello frame", "[e2e][agent]") {
  auto session = start_session();
  REQUIRE_FALSE(session->vsock_path().empty());

  // The agent serves one host connection; this one replaces the session's.
  std::string ok;
  int fd = firecracker_connect(session->vsock_path(), 52, ok);
  REQUIRE(fd >= 0);
  CHECK(ok.rfind("OK ", 0) == 0);
  // Hello v1.0, id 7: 12 00 00 00 | 01 00 | 07 00 00 00 | 01 00 00 00 | 8 x 00
  const std::vector<uint8_t> hello = frame(1, 7, hello_payload(1));
  REQUIRE(hello.size() == 22);
  CHECK(hello[0] == 0x12);
  REQUIRE(write_bytes(fd, hello));
  RawFrame reply;
  REQUIRE(read_frame(fd, reply));
  CHECK(reply.type == 1);  // Hello
  CHECK(reply.id == 7);
  REQUIRE(reply.payload.size() == 12);
  CHECK(get_le(reply.payload.data(), 2) == 1);  // major
  const uint64_t features = get_le(reply.payload.data() + 4, 8);
  INFO("agent features " << features);
  CHECK((features & 1) != 0);  // cgroup limits available in this guest

  // Stat (0x19) of /proc by hand: u32 length + "/proc", u8 follow = 1.
  std::vector<uint8_t> stat_payload;
  put_le(stat_payload, 5, 4);
  stat_payload.insert(stat_payload.end(), {'/', 'p', 'r', 'o', 'c'});
  stat_payload.push_back(1);
  REQUIRE(write_bytes(fd, frame(0x19, 8, stat_payload)));
  REQUIRE(read_frame(fd, reply));
  CHECK(reply.type == 0x47);  // StatResult
  CHECK(reply.id == 8);
  REQUIRE(reply.payload.size() == 4 + 8 + 4 + 4 + 8);
  CHECK(S_ISDIR(static_cast<mode_t>(get_le(reply.payload.data(), 4))));
  ::close(fd);

  // A client of another major version gets Error{EPROTONOSUPPORT}, then EOF.
  fd = firecracker_connect(session->vsock_path(), 52, ok);
  REQUIRE(fd >= 0);
  REQUIRE(write_bytes(fd, frame(1, 1, hello_payload(2))));
  REQUIRE(read_frame(fd, reply));
  CHECK(reply.type == 0x41);  // Error
  REQUIRE(reply.payload.size() >= 8);
  CHECK(static_cast<int32_t>(get_le(reply.payload.data(), 4)) == EPROTONOSUPPORT);
  CHECK(read_exact(fd, 1, 30'000).empty());
  ::close(fd);

  // Shutdown (0x12) by hand: Ack (0x40), then the guest resets.
  fd = firecracker_connect(session->vsock_path(), 52, ok);
  REQUIRE(fd >= 0);
  REQUIRE(write_bytes(fd, frame(1, 1, hello_payload(1))));
  REQUIRE(read_frame(fd, reply));
  REQUIRE(write_bytes(fd, frame(0x12, 2, {})));
  REQUIRE(read_frame(fd, reply));
  CHECK(reply.type == 0x40);
  CHECK(reply.id == 2);
  auto vm = session->finish(std::chrono::seconds(60));
  ::close(fd);
  REQUIRE(vm);
  CHECK(vm->reason == vmm::ExitReason::kGuestReset);
}

TEST_CASE("VmSession: when the agent dies, the waiting call fails and the VM has stopped", "[e2e][agent]") {
  auto session = start_session();
  agent::AgentClient& client = session->agent();
  agent::ExecRequest req;
  req.argv = {"sh", "-c", kKillAgentScript};
  req.env = kPath;
  auto r = client.exec(req);
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code != ETIMEDOUT);
  CHECK(session->vm_stopped());
  auto vm = session->finish(std::chrono::seconds(1));
  REQUIRE(vm);
  INFO(vm->detail << "\n" << session->console_tail(10));
  CHECK(vm->reason == vmm::ExitReason::kGuestPanic);
  CHECK(vm->detail.find("Attempted to kill init") != std::string::npos);
}

TEST_CASE("husk exec: a dead agent is exit 125 and 'lost the guest agent'", "[e2e][agent][exec]") {
  const ProcessResult r = run_process({husk_bin(), "exec", "--kernel", guest_file("vmlinux"), "--initrd",
                                       guest_file("initramfs.cpio"), "--", "sh", "-c", kKillAgentScript},
                                      300);
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("husk: lost the guest agent") != std::string::npos);
  CHECK(r.err.find("guest-panic") != std::string::npos);
}

TEST_CASE("husk exec: an initramfs of the caller's boots its own /init, which names a missing agent",
          "[e2e][agent][exec]") {
  TempDir dir;
  const std::string initrd = dir.file("no-agent.cpio.gz");
  const ProcessResult built = run_process({std::string(HUSK_SOURCE_DIR) + "/rootfs/initramfs/build.sh", initrd}, 120);
  INFO("build.sh: " << built.err);
  REQUIRE(built.exit_code == 0);
  const ProcessResult r =
      run_process({husk_bin(), "exec", "--kernel", guest_file("vmlinux"), "--initrd", initrd, "--", "true"}, 300);
  INFO("stderr: " << r.err);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 125);
  CHECK(r.err.find("the VM stopped before its agent answered") != std::string::npos);
  // Its /init ran (no rdinit= for an initramfs husk did not build) and said why.
  CHECK(r.err.find("HUSK_NO_AGENT: this initramfs has no /sbin/husk-agent") != std::string::npos);
}
