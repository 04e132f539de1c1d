// AgentProcess: the real husk-agent binary (HUSK_AGENT_BIN) started on a
// Unix socket in a temporary folder with --no-cgroups, and an AgentClient
// connected to it after the Hello handshake. Stopped (SIGTERM, then
// SIGKILL) and reaped when the fixture goes away.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/agent/agent_client.h"
#include "tests/support/temp_dir.h"

namespace husk::agent::test {

class AgentProcess {
 public:
  // `options` follow --listen; the default runs without cgroups.
  explicit AgentProcess(std::vector<std::string> options = {"--no-cgroups"})
      : socket_(dir_.file("agent.sock")), log_(dir_.file("agent.log")) {
    std::vector<std::string> args = {"husk-agent", "--listen", "unix:" + socket_};
    args.insert(args.end(), options.begin(), options.end());
    std::vector<char*> argv;
    // execv does not write through argv; the strings outlive the exec.
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::execv(HUSK_AGENT_BIN, argv.data());
      ::_exit(127);
    }
    REQUIRE(pid_ > 0);
  }
  ~AgentProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Connects, retrying while the agent starts up.
  Result<AgentClient> connect() {
    for (int i = 0;; ++i) {
      auto client = AgentClient::connect_unix(socket_);
      if (client || i == 500) return client;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Connects and says Hello; each call of the client has 30 s.
  AgentClient client() {
    auto c = connect();
    REQUIRE(c);
    c->set_call_timeout(std::chrono::seconds(30));
    REQUIRE(c->hello());
    return std::move(*c);
  }
  // Waits for the agent to exit on its own; its exit status or nullopt.
  std::optional<int> wait_exit(int ms) {
    for (int i = 0; i < ms / 10; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  [[nodiscard]] const husk::test::TempDir& dir() const { return dir_; }
  [[nodiscard]] const std::string& socket_path() const { return socket_; }

 private:
  husk::test::TempDir dir_;
  std::string socket_;
  std::string log_;
  pid_t pid_ = -1;
};

// Collects a job's output.
struct Captured {
  std::string out;
  std::string err;
  ExecCallbacks callbacks() {
    ExecCallbacks cb;
    cb.on_stdout = [this](std::string_view s) { out.append(s); };
    cb.on_stderr = [this](std::string_view s) { err.append(s); };
    return cb;
  }
};

inline ExecRequest command(std::vector<std::string> argv) {
  ExecRequest req;
  req.argv = std::move(argv);
  req.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  return req;
}

}  // namespace husk::agent::test
