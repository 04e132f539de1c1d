// AgentClient::configure_network (the agent's ConfigureNetwork, protocol
// 1.5): against a fake agent (fake_agent_peer.h), what goes on the wire,
// how an answer and an error come back, what is refused before sending and
// the call's deadline; against the real husk-agent on a Unix socket, its
// own refusals. Configuring an interface needs a guest: the e2e tier does it.
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "tests/unit/agent/agent_fixture.h"
#include "tests/unit/agent/fake_agent_peer.h"

namespace husk::agent::test {
namespace {

using namespace std::chrono_literals;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

proto::ConfigureNetwork config() {
  proto::ConfigureNetwork m;
  // Locally administered, and spelling "husk": no real interface has it.
  m.mac = {0x02, 0x68, 0x75, 0x73, 0x6b, 0x01};
  m.address = 0x0a00020f;  // 10.0.2.15/24 via 10.0.2.2
  m.prefix_len = 24;
  m.gateway = 0x0a000202;
  m.mtu = 65520;
  m.nameservers = {"10.0.2.3"};
  m.hosts = {{"10.0.2.2", "host.husk.internal"}};
  return m;
}

// A fake agent that answers Hello (with `minor`), then each request with
// `answer(request)`; counts the requests after Hello in `requests`.
template <typename Answer>
FakeAgentPeer::Script agent_that(uint16_t minor, std::atomic<int>& requests, Answer answer) {
  return [minor, &requests, answer](FakeAgentPeer& p) {
    auto hello = p.request();
    if (!hello) return;
    p.send(hello->id, proto::Hello{proto::kVersionMajor, minor, 0});
    while (auto f = p.request()) {
      ++requests;
      answer(p, *f);
    }
  };
}

TEST_CASE("agent network: the request goes as it is and its Ack is success", "[unit][agent]") {
  std::atomic<int> requests{0};
  FakeAgentPeer peer(agent_that(proto::kVersionMinor, requests, [](FakeAgentPeer& p, const proto::FrameView& f) {
    proto::ConfigureNetwork got;
    // Checked here, answered there: Catch's assertions stay on the test's thread.
    if (proto::decode(f, got) == proto::Status::kOk && got == config()) {
      p.send(f.id, proto::Ack{});
    } else {
      p.send(f.id, proto::Error{EBADMSG, "not the request that was sent"});
    }
  }));
  AgentClient client = peer.client(5s);
  REQUIRE(client.hello());
  const auto done = client.configure_network(config());
  INFO((done ? std::string() : done.error().message));
  CHECK(done);
  // A second time (the agent replaces what the first did).
  CHECK(client.configure_network(config()));
  CHECK(requests == 2);
}

TEST_CASE("agent network: the agent's error comes back with its errno and step", "[unit][agent]") {
  std::atomic<int> requests{0};
  FakeAgentPeer peer(agent_that(proto::kVersionMinor, requests, [](FakeAgentPeer& p, const proto::FrameView& f) {
    p.send(f.id, proto::Error{ENETUNREACH,
                              "ConfigureNetwork: SIOCADDRT default via 10.0.2.2 dev eth0: Network is unreachable"});
  }));
  AgentClient client = peer.client(5s);
  REQUIRE(client.hello());
  const auto done = client.configure_network(config());
  REQUIRE_FALSE(done);
  CHECK(done.error().code == ENETUNREACH);
  CHECK(done.error().message ==
        "agent: ConfigureNetwork: SIOCADDRT default via 10.0.2.2 dev eth0: Network is unreachable");
  CHECK(client.usable());
}

TEST_CASE("agent network: a bad request and an agent older than 1.5 are refused before sending", "[unit][agent]") {
  std::atomic<int> requests{0};
  {
    FakeAgentPeer peer(agent_that(proto::kVersionMinor, requests, [](FakeAgentPeer& p, const proto::FrameView& f) {
      p.send(f.id, proto::Ack{});
    }));
    AgentClient client = peer.client(5s);
    REQUIRE(client.hello());
    proto::ConfigureNetwork bad = config();
    bad.hosts.push_back({"10.0.2.2", "bad name"});
    auto done = client.configure_network(bad);
    REQUIRE_FALSE(done);
    CHECK(done.error().code == EINVAL);
    CHECK(done.error().message == "agent: ConfigureNetwork: host entry name 'bad name' is not a valid hostname");
    bad = config();
    bad.prefix_len = 33;
    done = client.configure_network(bad);
    REQUIRE_FALSE(done);
    CHECK(has(done.error().message, "prefix length 33"));
    CHECK(client.usable());
  }
  {
    FakeAgentPeer peer(agent_that(4, requests, [](FakeAgentPeer& p, const proto::FrameView& f) {
      p.send(f.id, proto::Ack{});
    }));
    AgentClient client = peer.client(5s);
    REQUIRE(client.hello());
    const auto done = client.configure_network(config());
    REQUIRE_FALSE(done);
    CHECK(done.error().code == EPROTONOSUPPORT);
    CHECK(has(done.error().message, "protocol 1.4, networking needs 1.5"));
  }
  CHECK(requests == 0);
}

TEST_CASE("agent network: an agent that never answers fails at the call deadline", "[unit][agent]") {
  FakeAgentPeer peer([](FakeAgentPeer& p) {
    p.answer_hello();
    p.ignore_all();
  });
  AgentClient client = peer.client(1000ms);
  REQUIRE(client.hello());
  const auto [done, s] = timed([&] { return client.configure_network(config()); });
  REQUIRE_FALSE(done);
  INFO(done.error().message);
  CHECK(done.error().code == ETIMEDOUT);
  CHECK(has(done.error().message, "ConfigureNetwork: no answer within 1000 ms"));
  CHECK(s >= 0.9);
  CHECK(s < 6.0);
  CHECK_FALSE(client.usable());
}

// The real agent, outside a VM: it checks the request itself and, not
// being PID 1, leaves this machine's network and /etc alone.
TEST_CASE("agent network: the real agent refuses a bad request, and any request when not PID 1", "[unit][agent]") {
  AgentProcess agent;
  AgentClient client = agent.client();
  auto done = client.configure_network(config());
  REQUIRE_FALSE(done);
  CHECK(done.error().code == EPERM);
  CHECK(has(done.error().message, "only the guest's PID 1 configures the network"));

  // A request the host would not send, on a connection of its own.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, agent.socket_path().c_str(), agent.socket_path().size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  FrameStream raw(std::move(fd));
  REQUIRE(raw.send(1, proto::Hello{}, 5000));
  auto reply = raw.next(5000);
  REQUIRE(reply);
  REQUIRE(*reply);
  CHECK((*reply)->type == uint16_t(proto::MsgType::kHello));
  proto::ConfigureNetwork bad = config();
  bad.nameservers = {"10.0.2.3\nnameserver 6.6.6.6"};
  REQUIRE(raw.send(2, bad, 5000));
  reply = raw.next(5000);
  REQUIRE(reply);
  REQUIRE(*reply);
  proto::Error error;
  REQUIRE(proto::decode(**reply, error) == proto::Status::kOk);
  CHECK((*reply)->id == 2);
  CHECK(error.err == EINVAL);
  CHECK(has(error.message, "ConfigureNetwork: nameserver '10.0.2.3"));
}

}  // namespace
}  // namespace husk::agent::test
