// FakeAgentPeer: the guest's end of an agent connection played by a test,
// for hostile agents the real husk-agent never is: one that never answers,
// drips its frames a byte at a time, sends a header claiming a huge length,
// stalls in the middle of a frame, or chatters without end. A socketpair:
// the test gets an AgentClient on one end; `script` runs on a thread with
// the other. The destructor stops the script (stopping() turns true, the
// socket is shut down) and joins it, so a script that drips forever ends.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/agent/agent_client.h"

namespace husk::agent::test {

class FakeAgentPeer {
 public:
  using Script = std::function<void(FakeAgentPeer&)>;

  explicit FakeAgentPeer(Script script) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    client_fd_ = sv[0];
    fd_ = sv[1];
    stream_ = FrameStream(UniqueFd(sv[1]));
    thread_ = std::thread([this, s = std::move(script)] { s(*this); });
  }
  ~FakeAgentPeer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
  }
  FakeAgentPeer(const FakeAgentPeer&) = delete;
  FakeAgentPeer& operator=(const FakeAgentPeer&) = delete;

  // The host's end, once (the client owns the descriptor).
  AgentClient client(std::chrono::milliseconds call_timeout) {
    REQUIRE(client_fd_ >= 0);
    AgentClient c{UniqueFd(client_fd_)};
    client_fd_ = -1;
    c.set_call_timeout(call_timeout);
    return c;
  }

  [[nodiscard]] bool stopping() const { return stop_; }

  // The host's next request (nullopt when the test is over or it hung up).
  std::optional<proto::FrameView> request() {
    while (!stop_) {
      auto f = stream_.next(100);
      if (!f) return std::nullopt;
      if (*f) return **f;
    }
    return std::nullopt;
  }
  // Reads the host's Hello and answers it.
  uint32_t answer_hello() {
    auto f = request();
    if (!f) return 0;
    const uint32_t id = f->id;
    (void)stream_.send(id, proto::Hello{}, 1000);
    return id;
  }
  // Sends bytes as they are; false once the host is gone.
  bool write(std::span<const uint8_t> bytes) { return !stop_ && stream_.write_all(bytes, 1000).has_value(); }
  template <typename M>
  bool send(uint32_t id, const M& msg) {
    return !stop_ && stream_.send(id, msg, 1000).has_value();
  }
  // Sends `bytes` one at a time, `every` apart, until done or the test is over.
  void drip(std::span<const uint8_t> bytes, std::chrono::milliseconds every) {
    for (uint8_t b : bytes) {
      if (!write(std::span(&b, 1))) return;
      sleep(every);
    }
  }
  // Sleeps, waking early when the test is over.
  void sleep(std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (!stop_ && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Reads and drops the host's frames until the test is over: an agent
  // that listens but never answers.
  void ignore_all() {
    while (request()) {
    }
  }

  template <typename M>
  static std::vector<uint8_t> frame(uint32_t id, const M& msg) {
    std::vector<uint8_t> out;
    REQUIRE(proto::append_frame(out, id, msg) == proto::Status::kOk);
    return out;
  }

 private:
  int client_fd_ = -1;
  int fd_ = -1;  // owned by stream_
  FrameStream stream_;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: starts after the members it uses
};

// Runs `call` and returns its result and the seconds it took.
template <typename F>
auto timed(F&& call) {
  const auto start = std::chrono::steady_clock::now();
  auto result = call();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::pair{std::move(result), s};
}

}  // namespace husk::agent::test
