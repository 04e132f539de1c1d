// The agent's connection handling against the real husk-agent: version
// handshake, refusal of bad frames without dying, reconnection, shutdown;
// and AgentClient's Firecracker-style vsock handshake against a fake
// vsock device socket.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/unit/agent/agent_fixture.h"

namespace husk::agent::test {
namespace {

// A raw connection for sending what AgentClient never would.
FrameStream raw_connect(AgentProcess& agent) {
  auto client = agent.connect();
  REQUIRE(client);
  // Hand the fd over: AgentClient has no release, so dup it.
  return FrameStream(UniqueFd(::dup(client->fd())));
}

template <typename M>
M expect_frame(FrameStream& s) {
  auto frame = s.next(10000);
  REQUIRE(frame);
  REQUIRE(frame->has_value());
  M msg;
  REQUIRE(proto::decode(**frame, msg) == proto::Status::kOk);
  return msg;
}

TEST_CASE("agent: a different protocol major is refused clearly", "[unit][agent]") {
  AgentProcess agent;
  FrameStream s = raw_connect(agent);
  REQUIRE(s.send(1, proto::Hello{proto::kVersionMajor + 1, 0, 0}, 1000));
  const auto err = expect_frame<proto::Error>(s);
  CHECK(err.err == EPROTONOSUPPORT);
  CHECK(err.message.find("not supported") != std::string::npos);
  auto next = s.next(10000);  // then the agent hangs up
  REQUIRE_FALSE(next);
  CHECK(next.error().code == ECONNRESET);
  // A correct client is served afterwards.
  AgentClient client = agent.client();
  CHECK(client.exec(command({"true"})));
}

TEST_CASE("agent: requests before Hello and unknown types are refused", "[unit][agent]") {
  AgentProcess agent;
  FrameStream s = raw_connect(agent);
  REQUIRE(s.send(5, proto::Stat{"/", true}, 1000));
  auto err = expect_frame<proto::Error>(s);
  CHECK(err.err == EPROTO);
  REQUIRE(s.send(6, proto::Hello{}, 1000));
  CHECK(expect_frame<proto::Hello>(s).major == proto::kVersionMajor);

  // An unknown type is answered and skipped; the stream stays in sync.
  std::vector<uint8_t> unknown;
  REQUIRE(proto::append_frame(unknown, 7, proto::Ack{}) == proto::Status::kOk);
  unknown[4] = 0x99;
  REQUIRE(s.write_all(unknown, 1000));
  err = expect_frame<proto::Error>(s);
  CHECK(err.err == EPROTO);
  // An agent-to-host message sent to the agent, and a malformed payload.
  REQUIRE(s.send(8, proto::Started{1}, 1000));
  CHECK(expect_frame<proto::Error>(s).err == EPROTO);
  std::vector<uint8_t> bad;
  REQUIRE(proto::append_frame(bad, 9, proto::Signal{1}) == proto::Status::kOk);
  bad[0] = uint8_t(bad[0] - 1);  // a 3-byte i32
  bad.pop_back();
  REQUIRE(s.write_all(bad, 1000));
  CHECK(expect_frame<proto::Error>(s).err == EPROTO);
  REQUIRE(s.send(10, proto::Stat{"/", true}, 1000));
  CHECK(S_ISDIR(expect_frame<proto::StatResult>(s).mode));
}

TEST_CASE("agent: an oversized frame ends the connection, not the agent", "[unit][agent]") {
  AgentProcess agent;
  FrameStream s = raw_connect(agent);
  const uint8_t huge[10] = {0xff, 0xff, 0xff, 0x7f, 1, 0, 0, 0, 0, 0};
  REQUIRE(s.write_all(huge, 1000));
  CHECK(expect_frame<proto::Error>(s).err == EPROTO);
  auto next = s.next(10000);
  REQUIRE_FALSE(next);
  AgentClient client = agent.client();
  CHECK(client.stat("/"));
}

TEST_CASE("agent: a dropped connection kills its jobs; a new one is served", "[unit][agent]") {
  AgentProcess agent;
  const std::string pidfile = agent.dir().file("pid");
  {
    FrameStream s = raw_connect(agent);
    REQUIRE(s.send(1, proto::Hello{}, 1000));
    expect_frame<proto::Hello>(s);
    proto::Exec exec;
    exec.argv = {"/bin/sh", "-c", "echo $$ > " + pidfile + "; exec sleep 100"};
    REQUIRE(s.send(2, exec, 1000));
    expect_frame<proto::Started>(s);
    for (int i = 0; i < 300 && ::access(pidfile.c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }  // hang up with the job running
  AgentClient client = agent.client();
  Captured cap;
  REQUIRE(client.exec(command({"cat", pidfile}), cap.callbacks()));
  const pid_t pid = std::stoi(cap.out);
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    gone = ::kill(pid, 0) != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(gone);
}

TEST_CASE("agent: Shutdown stops an agent that is not PID 1", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  REQUIRE(client.shutdown());
  const auto status = agent.wait_exit(5000);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

// A fake VM vsock socket: accepts one connection, checks the CONNECT line,
// answers `reply`, then (if it said OK) plays the agent's side of Hello.
class FakeVsock {
 public:
  FakeVsock(std::string path, std::string reply) : path_(std::move(path)) {
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd_.get(), 1) == 0);
    thread_ = std::thread([this, reply] { serve(reply); });
  }
  ~FakeVsock() { thread_.join(); }
  FakeVsock(const FakeVsock&) = delete;
  FakeVsock& operator=(const FakeVsock&) = delete;
  std::string line;  // what the client sent, read after the client is done

 private:
  void serve(const std::string& reply) {
    UniqueFd conn(::accept(fd_.get(), nullptr, nullptr));
    char c;
    while (::read(conn.get(), &c, 1) == 1 && c != '\n') line.push_back(c);
    if (reply.empty()) return;  // refuse by hanging up, as Firecracker does
    [[maybe_unused]] ssize_t n = ::write(conn.get(), reply.data(), reply.size());
    FrameStream s(std::move(conn));
    auto frame = s.next(5000);
    if (!frame || !*frame) return;
    (void)s.send((*frame)->id, proto::Hello{proto::kVersionMajor, 7, 0}, 5000);
  }
  std::string path_;
  UniqueFd fd_;
  std::thread thread_;
};

TEST_CASE("AgentClient speaks Firecracker's vsock CONNECT handshake", "[unit][agent]") {
  husk::test::TempDir dir;
  {
    FakeVsock fake(dir.file("v.sock"), "OK 1073741824\n");
    auto client = AgentClient::connect_vsock_uds(dir.file("v.sock"), 52);
    REQUIRE(client);
    client->set_call_timeout(std::chrono::seconds(5));
    auto hello = client->hello();
    REQUIRE(hello);
    CHECK(hello->minor == 7);
    client = Unexpected(Error{});  // close before joining the fake
    CHECK(fake.line == "CONNECT 52");
  }
  {
    FakeVsock fake(dir.file("refuse.sock"), "");
    auto client = AgentClient::connect_vsock_uds(dir.file("refuse.sock"), 1234);
    REQUIRE_FALSE(client);
    CHECK(client.error().code == ECONNREFUSED);
  }
  auto none = AgentClient::connect_vsock_uds(dir.file("absent.sock"), 52);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == ENOENT);
}

}  // namespace
}  // namespace husk::agent::test
