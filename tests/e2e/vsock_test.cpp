// End-to-end: virtio-vsock between host Unix sockets and the real guest,
// through the Firecracker-compatible scheme (CONNECT <port> / <uds>_<port>).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <regex>
#include <thread>

#include "tests/e2e/guest_session.h"

using namespace husk::test;

namespace {

uint64_t fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int unix_socket() { return ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

sockaddr_un address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  return a;
}

// Connects the way Firecracker users do: plain Unix socket, CONNECT line.
// Retries until the guest listens (or the deadline passes). Returns -1 then.
int connect_guest(const std::string& uds, uint32_t port, double timeout_s, std::string* ok_line = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = unix_socket();
    sockaddr_un a = address(uds);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      const std::string line = "CONNECT " + std::to_string(port) + "\n";
      if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
        std::string reply;
        char c = 0;
        while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
        if (reply.rfind("OK ", 0) == 0) {
          if (ok_line != nullptr) *ok_line = reply;
          return fd;
        }
      }
    }
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return -1;
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Sends `data`, half-closes, and returns everything read back.
std::vector<uint8_t> echo_round_trip(int fd, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> back;
  std::thread reader([&] {
    uint8_t buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) back.insert(back.end(), buf, buf + n);
  });
  write_all(fd, data.data(), data.size());
  ::shutdown(fd, SHUT_WR);
  reader.join();
  ::close(fd);
  return back;
}

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

}  // namespace

TEST_CASE("host clients reach a guest listener through CONNECT, several at once", "[e2e]") {
  TempDir dir;
  const std::string uds = dir.file("v.sock");
  auto guest = std::async(std::launch::async, [&] {
    return run_guest_script("/bin/vsock_tool echo 1234 5", {"--vsock", uds}, initrd_with_tools(dir));
  });
  std::string ok;
  int first = connect_guest(uds, 1234, 240, &ok);
  REQUIRE(first >= 0);
  CHECK(std::regex_match(ok, std::regex("OK [0-9]+")));
  const auto big = random_bytes(4 << 20, 1);
  CHECK(echo_round_trip(first, big) == big);
  // Four more, concurrently.
  std::vector<std::future<bool>> clients;
  for (unsigned i = 0; i < 4; ++i) {
    clients.push_back(std::async(std::launch::async, [&, i] {
      int fd = connect_guest(uds, 1234, 60);
      if (fd < 0) return false;
      const auto data = random_bytes(1 << 20, 10 + i);
      return echo_round_trip(fd, data) == data;
    }));
  }
  for (auto& c : clients) CHECK(c.get());
  auto r = guest.get();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("HUSK_SCRIPT_DONE") != std::string::npos);
}

TEST_CASE("a guest connection to host port P reaches <uds>_P, and a slow reader loses nothing", "[e2e]") {
  TempDir dir;
  const std::string uds = dir.file("v.sock");
  const std::string port_path = uds + "_5000";
  int listener = unix_socket();
  sockaddr_un a = address(port_path);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  auto sink = std::async(std::launch::async, [&] {
    int fd = ::accept(listener, nullptr, nullptr);
    // Read nothing for a while: the guest must be held back by credit,
    // and no byte may be lost.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    uint64_t h = 1469598103934665603ull, total = 0;
    uint8_t buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) {
      h = fnv(h, buf, static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
    }
    const char reply[] = "thanks";
    write_all(fd, reinterpret_cast<const uint8_t*>(reply), 6);
    ::close(fd);
    return std::make_pair(total, h);
  });
  auto r = run_guest_script("/bin/vsock_tool send 5000 16000000", {"--vsock", uds}, initrd_with_tools(dir));
  INFO(r.out << r.err);
  ::close(listener);
  auto [total, hash] = sink.get();
  CHECK(total == 16000000);
  char expected[128];
  std::snprintf(expected, sizeof(expected), "sent 16000000 bytes fnv %016llx, got 6 back",
                static_cast<unsigned long long>(hash));
  CHECK(r.out.find(expected) != std::string::npos);
}

TEST_CASE("connections to ports nobody listens on are refused on both sides", "[e2e]") {
  TempDir dir;
  const std::string uds = dir.file("v.sock");
  auto guest = std::async(std::launch::async, [&] {
    return run_guest_script("/bin/vsock_tool send 6000 10; sleep 2", {"--vsock", uds}, initrd_with_tools(dir));
  });
  // Host side: no guest listener on 7777, so no OK ever comes.
  int fd = connect_guest(uds, 7777, 20);
  CHECK(fd < 0);
  auto r = guest.get();
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("vsock connect") != std::string::npos);  // the guest's connect failed
}
