// Every agent call has a host-side deadline for the whole call (issue 11):
// AgentClient against a fake agent (fake_agent_peer.h) that never answers,
// drips its frames, sends a header claiming a huge length, stalls in the
// middle of a frame, chatters without end or never reads. Each call must
// return an error naming what timed out, by its deadline plus a margin for
// a loaded 2-core machine (kSlack), never later and never hang.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"
#include "tests/unit/agent/fake_agent_peer.h"

namespace husk::agent::test {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

// How late a deadline may be seen on a loaded CI machine.
constexpr double kSlack = 5.0;
constexpr milliseconds kCall = 1000ms;
constexpr double kCallS = 1.0;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_CASE("agent deadline: Hello to an agent that never answers fails at the call deadline", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) { p.ignore_all(); });
  AgentClient client = peer.client(kCall);
  const auto [hello, s] = timed([&] { return client.hello(); });
  REQUIRE_FALSE(hello);
  INFO(hello.error().message);
  CHECK(hello.error().code == ETIMEDOUT);
  CHECK(has(hello.error().message, "Hello"));
  CHECK(has(hello.error().message, "no answer within 1000 ms"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
  // A client whose call timed out is not used again: the next call fails at once.
  const auto [clock, s2] = timed([&] { return client.set_clock(1); });
  REQUIRE_FALSE(clock);
  INFO(clock.error().message);
  CHECK(has(clock.error().message, "SetClock"));
  CHECK(has(clock.error().message, "unusable"));
  CHECK(s2 < 0.5);
  CHECK_FALSE(client.usable());
}

TEST_CASE("agent deadline: a Hello dripped a byte at a time cannot stretch the call", "[unit][agent]") {
  // Each byte comes well within the call timeout, so a per-read timeout
  // would wait for all of them (about 5 s); the call's deadline is 1 s.
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    auto f = p.request();
    if (!f) return;
    p.drip(FakeAgentPeer::frame(f->id, proto::Hello{}), 300ms);
    p.ignore_all();
  });
  AgentClient client = peer.client(kCall);
  const auto [hello, s] = timed([&] { return client.hello(); });
  REQUIRE_FALSE(hello);
  INFO(hello.error().message);
  CHECK(hello.error().code == ETIMEDOUT);
  CHECK(has(hello.error().message, "Hello"));
  CHECK(s < kCallS + kSlack);
}

TEST_CASE("agent deadline: Shutdown to an agent that never acknowledges fails at the call deadline",
          "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    p.ignore_all();
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  const auto [down, s] = timed([&] { return client.shutdown(); });
  REQUIRE_FALSE(down);
  INFO(down.error().message);
  CHECK(down.error().code == ETIMEDOUT);
  CHECK(has(down.error().message, "Shutdown"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
}

TEST_CASE("agent deadline: a frame header claiming a huge length fails at once", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    auto f = p.request();
    if (!f) return;
    const uint8_t huge[10] = {0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0, 0, 0};
    p.write(huge);
    p.ignore_all();
  });
  AgentClient client = peer.client(10s);
  const auto [hello, s] = timed([&] { return client.hello(); });
  REQUIRE_FALSE(hello);
  INFO(hello.error().message);
  CHECK(hello.error().code == EPROTO);
  CHECK(has(hello.error().message, "Hello"));
  CHECK(has(hello.error().message, "frame too large"));
  CHECK(s < kSlack);
  CHECK_FALSE(client.usable());
}

TEST_CASE("agent deadline: a frame that stalls after its header fails at the frame deadline, in a run without "
          "a time limit too",
          "[unit][agent]") {
  // Started, then an Output frame that claims the largest size, whose body
  // drips a byte every 200 ms: each read is prompt, the frame never ends.
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    auto exec = p.request();
    if (!exec) return;
    p.send(exec->id, proto::Started{42});
    std::vector<uint8_t> header(proto::kOutputHeaderSize);
    REQUIRE(proto::put_output_header(std::span<uint8_t, proto::kOutputHeaderSize>(header), exec->id,
                                     proto::Stream::kStdout, 1000) == proto::Status::kOk);
    p.write(header);
    const std::vector<uint8_t> body(1000, 'x');
    p.drip(body, 200ms);
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  ExecRequest req;
  req.argv = {"/bin/true"};  // no wall limit: the run itself may last
  uint32_t pid = 0;
  ExecCallbacks cb;
  cb.on_started = [&](uint32_t p) { pid = p; };
  const auto [run, s] = timed([&] { return client.exec(req, cb); });
  CHECK(pid == 42);
  REQUIRE_FALSE(run);
  INFO(run.error().message);
  CHECK(run.error().code == ETIMEDOUT);
  CHECK(has(run.error().message, "exec"));
  CHECK(has(run.error().message, "frame"));
  CHECK(has(run.error().message, "1000 ms after its first byte"));
  CHECK(s < kCallS + kSlack);
}

TEST_CASE("agent deadline: an Exec that is never Started fails at the call deadline", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    p.ignore_all();
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  ExecRequest req;
  req.argv = {"/bin/true"};
  req.limits.wall_ms = 60'000;  // the start's own deadline comes first
  const auto [run, s] = timed([&] { return client.exec(req); });
  REQUIRE_FALSE(run);
  INFO(run.error().message);
  CHECK(run.error().code == ETIMEDOUT);
  CHECK(has(run.error().message, "exec: Started"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
}

TEST_CASE("agent deadline: a run that chatters without reporting its end stops at wall limit + kExitGrace",
          "[unit][agent]") {
  // Valid output every 100 ms, each frame whole and within the run's
  // credit, and never Exited: the run's deadline is for the whole run.
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    auto exec = p.request();
    if (!exec) return;
    p.send(exec->id, proto::Started{7});
    while (!p.stopping()) {
      std::vector<uint8_t> header(proto::kOutputHeaderSize);
      REQUIRE(proto::put_output_header(std::span<uint8_t, proto::kOutputHeaderSize>(header), exec->id,
                                       proto::Stream::kStdout, 1) == proto::Status::kOk);
      header.push_back('.');
      if (!p.write(header)) return;
      p.sleep(100ms);
    }
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  ExecRequest req;
  req.argv = {"/bin/true"};
  req.limits.wall_ms = 500;
  std::string out;
  ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) { out.append(d); };
  const auto [run, s] = timed([&] { return client.exec(req, cb); });
  REQUIRE_FALSE(run);
  INFO(run.error().message);
  CHECK(run.error().code == ETIMEDOUT);
  CHECK(has(run.error().message, "the run's end"));
  CHECK(has(run.error().message, "wall limit 500 ms"));
  CHECK_FALSE(out.empty());
  const double deadline = 0.5 + std::chrono::duration<double>(AgentClient::kExitGrace).count();
  CHECK(s >= deadline * 0.9);
  CHECK(s < deadline + kSlack);
}

TEST_CASE("agent deadline: a file read in whole but tiny chunks must keep up the minimum rate", "[unit][agent]") {
  // A one-byte chunk every 50 ms: every frame whole and prompt, but 20
  // bytes a second; the read has its call timeout plus 1 s per MiB.
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    auto read = p.request();
    if (!read) return;
    for (uint64_t offset = 0; !p.stopping(); ++offset) {
      if (!p.send(read->id, proto::FileData{offset, false, "x"})) return;
      p.sleep(50ms);
    }
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  const auto [data, s] = timed([&] { return client.read_file("/big", 0); });
  REQUIRE_FALSE(data);
  INFO(data.error().message);
  CHECK(data.error().code == ETIMEDOUT);
  CHECK(has(data.error().message, "ReadFile"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
}

TEST_CASE("agent deadline: an upload to an agent that stops reading fails once it takes nothing for the call "
          "timeout",
          "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    p.sleep(std::chrono::hours(1));  // reads nothing more: the socket fills
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  // 8 MiB: the whole upload may take 1 s + 8 s, but it stalls at once.
  const std::string data(8u << 20, 'd');
  const auto [w, s] = timed([&] { return client.write_file("/x", data); });
  REQUIRE_FALSE(w);
  INFO(w.error().message);
  CHECK(w.error().code == ETIMEDOUT);
  CHECK(has(w.error().message, "WriteFile"));
  CHECK(has(w.error().message, "stalled"));
  CHECK(has(w.error().message, "does not read"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
  CHECK_FALSE(client.usable());
}

TEST_CASE("agent deadline: a file read that stops after a first chunk fails at the call timeout", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    auto read = p.request();
    if (!read) return;
    for (uint64_t i = 0; i < 8; ++i) {
      p.send(read->id, proto::FileData{i * proto::kMaxChunk, false, std::string(proto::kMaxChunk, 'x')});
    }
    p.ignore_all();
  });
  AgentClient client = peer.client(kCall);
  REQUIRE(client.hello());
  // 2 MiB came at once: the whole read may take 1 s + 2 s, but the next
  // chunk must come within the call timeout.
  const auto [data, s] = timed([&] { return client.read_file("/big", 0); });
  REQUIRE_FALSE(data);
  INFO(data.error().message);
  CHECK(data.error().code == ETIMEDOUT);
  CHECK(has(data.error().message, "ReadFile: no answer within 1000 ms"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
}

// A vsock device socket whose "OK" line comes one byte at a time.
class DrippingVsock {
 public:
  explicit DrippingVsock(const std::string& path) {
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd_.get(), 1) == 0);
    thread_ = std::thread([this] {
      conn_.reset(::accept(fd_.get(), nullptr, nullptr));
      for (char c : std::string("OK 1073741824\n")) {
        for (int i = 0; i < 30 && !stop_; ++i) std::this_thread::sleep_for(10ms);
        if (stop_ || ::write(conn_.get(), &c, 1) != 1) return;
      }
    });
  }
  ~DrippingVsock() {
    stop_ = true;
    thread_.join();
  }
  DrippingVsock(const DrippingVsock&) = delete;
  DrippingVsock& operator=(const DrippingVsock&) = delete;

 private:
  UniqueFd fd_;
  UniqueFd conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE("agent deadline: the vsock CONNECT handshake has one deadline for the whole reply", "[unit][agent]") {
  husk::test::TempDir dir;
  DrippingVsock fake(dir.file("v.sock"));
  const auto [client, s] = timed([&] { return AgentClient::connect_vsock_uds(dir.file("v.sock"), 52, kCall); });
  REQUIRE_FALSE(client);
  INFO(client.error().message);
  CHECK(client.error().code == ETIMEDOUT);
  CHECK(has(client.error().message, "CONNECT 52"));
  CHECK(s >= kCallS * 0.9);
  CHECK(s < kCallS + kSlack);
}

}  // namespace
}  // namespace husk::agent::test
