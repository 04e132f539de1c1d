// Passt with the real passt binary (Debian package `passt`): ARP and UDP
// through the gateway mapping over a stream link, stop, one-off exit, and
// the errors. Skipped (with a message) where passt is not installed.
#include "runtime/net/passt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/common/deadline.h"
#include "runtime/net/frame_link.h"
#include "tests/support/temp_dir.h"

namespace husk::net {
namespace {

using Frame = std::vector<uint8_t>;
const uint8_t kGuestMac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

bool passt_installed() { return ::access("/usr/bin/passt", X_OK) == 0 || std::getenv("HUSK_PASST") != nullptr; }

void put16(Frame& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v));
}
void put_ip(Frame& f, const char* address) {
  in_addr a{};
  REQUIRE(::inet_pton(AF_INET, address, &a) == 1);
  const auto* b = reinterpret_cast<const uint8_t*>(&a.s_addr);
  f.insert(f.end(), b, b + 4);
}
uint16_t get16(const Frame& f, size_t at) { return static_cast<uint16_t>((f[at] << 8) | f[at + 1]); }
std::string get_ip(const Frame& f, size_t at) {
  return fmt::format("{}.{}.{}.{}", f[at], f[at + 1], f[at + 2], f[at + 3]);
}
uint16_t checksum(const uint8_t* data, size_t size, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < size; i += 2) sum += static_cast<uint32_t>((data[i] << 8) | data[i + 1]);
  if (size % 2 != 0) sum += static_cast<uint32_t>(data[size - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void ethernet(Frame& f, uint16_t type) {
  f.insert(f.end(), 6, 0xff);
  f.insert(f.end(), kGuestMac, kGuestMac + 6);
  put16(f, type);
}

Frame arp_request(const char* sender, const char* target) {
  Frame f;
  ethernet(f, 0x0806);
  put16(f, 1);       // Ethernet
  put16(f, 0x0800);  // IPv4
  f.push_back(6);
  f.push_back(4);
  put16(f, 1);  // request
  f.insert(f.end(), kGuestMac, kGuestMac + 6);
  put_ip(f, sender);
  f.insert(f.end(), 6, 0);
  put_ip(f, target);
  f.resize(60, 0);
  return f;
}

Frame udp_datagram(const char* src, uint16_t sport, const char* dst, uint16_t dport, const std::string& payload) {
  Frame f;
  ethernet(f, 0x0800);
  const size_t ip = f.size();
  f.push_back(0x45);
  f.push_back(0);
  put16(f, static_cast<uint16_t>(20 + 8 + payload.size()));
  put16(f, 1);
  put16(f, 0x4000);
  f.push_back(64);
  f.push_back(17);
  put16(f, 0);
  put_ip(f, src);
  put_ip(f, dst);
  const uint16_t ip_sum = checksum(&f[ip], 20);
  f[ip + 10] = static_cast<uint8_t>(ip_sum >> 8);
  f[ip + 11] = static_cast<uint8_t>(ip_sum);
  const size_t udp = f.size();
  put16(f, sport);
  put16(f, dport);
  put16(f, static_cast<uint16_t>(8 + payload.size()));
  put16(f, 0);
  f.insert(f.end(), payload.begin(), payload.end());
  // Pseudo-header: addresses, protocol, UDP length.
  uint32_t sum = 17 + static_cast<uint32_t>(8 + payload.size());
  for (size_t i = 0; i < 8; i += 2) sum += static_cast<uint32_t>((f[ip + 12 + i] << 8) | f[ip + 13 + i]);
  uint16_t udp_sum = checksum(&f[udp], f.size() - udp, sum);
  if (udp_sum == 0) udp_sum = 0xffff;
  f[udp + 6] = static_cast<uint8_t>(udp_sum >> 8);
  f[udp + 7] = static_cast<uint8_t>(udp_sum);
  return f;
}

// The first frame from the link that `wanted` accepts, within 3 s.
std::optional<Frame> receive_matching(FrameLink& link, const std::function<bool(const Frame&)>& wanted) {
  const Deadline deadline = Deadline::after(std::chrono::milliseconds(3000));
  while (!deadline.expired()) {
    auto got = link.receive();
    REQUIRE(got);
    if (!got->has_value()) {
      (void)poll_until(link.fd(), POLLIN, deadline);
      continue;
    }
    Frame frame((*got)->begin(), (*got)->end());
    if (wanted(frame)) return frame;
  }
  return std::nullopt;
}

void send_frame(FrameLink& link, const Frame& frame) {
  auto sent = link.send(frame);
  REQUIRE(sent);
  REQUIRE(*sent == FrameLink::SendStatus::kSent);
}

bool is_zombie_or_gone(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (!std::getline(stat, text)) return true;
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

TEST_CASE("passt: ARP for the gateway, UDP to the host's loopback, stop", "[net][passt]") {
  if (!passt_installed()) {
    WARN("SKIP: passt is not installed (Debian package passt)");
    return;
  }
  PasstOptions options;
  auto passt = Passt::start(options);
  REQUIRE(passt);
  const pid_t pid = passt->pid();
  REQUIRE(pid > 0);
  const std::string folder = std::filesystem::path(passt->log_path()).parent_path();
  CHECK(std::filesystem::is_directory(folder));
  auto link = make_stream_link(passt->take_socket());
  REQUIRE(link);
  CHECK_FALSE(passt->take_socket().valid());

  SECTION("ARP") {
    send_frame(**link, arp_request("10.0.2.15", "10.0.2.2"));
    auto reply = receive_matching(**link, [](const Frame& f) { return f.size() >= 42 && get16(f, 12) == 0x0806; });
    REQUIRE(reply);
    CHECK(get16(*reply, 20) == 2);  // reply
    CHECK(get_ip(*reply, 28) == "10.0.2.2");
    CHECK(get_ip(*reply, 38) == "10.0.2.15");
    CHECK(Frame(reply->begin(), reply->begin() + 6) == Frame(kGuestMac, kGuestMac + 6));
  }

  SECTION("UDP to the gateway reaches 127.0.0.1, and the answer comes back") {
    UniqueFd server(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(server);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(server.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(server.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const uint16_t port = ntohs(address.sin_port);

    send_frame(**link, udp_datagram("10.0.2.15", 40000, "10.0.2.2", port, "hello"));
    REQUIRE(poll_until(server.get(), POLLIN, Deadline::after(std::chrono::milliseconds(3000))) > 0);
    char buffer[64] = {};
    sockaddr_in from{};
    socklen_t from_length = sizeof from;
    const ssize_t n = ::recvfrom(server.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
    REQUIRE(n == 5);
    CHECK(std::string(buffer, 5) == "hello");

    REQUIRE(::sendto(server.get(), "back", 4, 0, reinterpret_cast<sockaddr*>(&from), from_length) == 4);
    auto answer = receive_matching(**link, [](const Frame& f) {
      return f.size() >= 42 && get16(f, 12) == 0x0800 && f[23] == 17 && get16(f, 36) == 40000;
    });
    REQUIRE(answer);
    CHECK(get_ip(*answer, 26) == "10.0.2.2");
    CHECK(get_ip(*answer, 30) == "10.0.2.15");
    CHECK(get16(*answer, 34) == port);
    CHECK(std::string(answer->begin() + 42, answer->begin() + 46) == "back");
  }

  passt->stop();
  CHECK(passt->pid() == -1);
  CHECK(::kill(pid, 0) == -1);
  CHECK_FALSE(std::filesystem::exists(folder));
  passt->stop();  // idempotent
}

TEST_CASE("passt: exits by itself when the VM's socket closes (one-off)", "[net][passt]") {
  if (!passt_installed()) {
    WARN("SKIP: passt is not installed (Debian package passt)");
    return;
  }
  auto passt = Passt::start(PasstOptions{});
  REQUIRE(passt);
  const pid_t pid = passt->pid();
  CHECK_FALSE(is_zombie_or_gone(pid));
  { UniqueFd socket = passt->take_socket(); }
  const Deadline deadline = Deadline::after(std::chrono::milliseconds(3000));
  while (!is_zombie_or_gone(pid) && !deadline.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(is_zombie_or_gone(pid));
}

TEST_CASE("passt: moving keeps one owner", "[net][passt]") {
  if (!passt_installed()) {
    WARN("SKIP: passt is not installed (Debian package passt)");
    return;
  }
  auto started = Passt::start(PasstOptions{});
  REQUIRE(started);
  Passt moved = std::move(*started);
  const pid_t pid = moved.pid();
  CHECK(started->pid() == -1);
  started->stop();  // the moved-from object owns nothing
  CHECK(::kill(pid, 0) == 0);
  { Passt gone = std::move(moved); }
  CHECK(::kill(pid, 0) == -1);
}

TEST_CASE("passt: errors", "[net][passt]") {
  SECTION("a missing binary names the package") {
    PasstOptions options;
    options.binary = "/nonexistent/passt";
    auto passt = Passt::start(options);
    REQUIRE_FALSE(passt);
    CHECK_THAT(passt.error().message, Catch::Contains("/nonexistent/passt") && Catch::Contains("Debian package"));
  }
  SECTION("$HUSK_PASST is used when no binary is given") {
    const char* old = std::getenv("HUSK_PASST");
    const std::string saved = old != nullptr ? old : "";
    ::setenv("HUSK_PASST", "/nonexistent/husk-passt", 1);
    auto passt = Passt::start(PasstOptions{});
    if (old != nullptr) ::setenv("HUSK_PASST", saved.c_str(), 1); else ::unsetenv("HUSK_PASST");
    REQUIRE_FALSE(passt);
    CHECK_THAT(passt.error().message, Catch::Contains("/nonexistent/husk-passt"));
  }
  SECTION("bad options") {
    PasstOptions options;
    options.guest_address = "10.0.2";
    CHECK_FALSE(Passt::start(options));
    options = PasstOptions{};
    options.mtu = 10;
    CHECK_FALSE(Passt::start(options));
    options = PasstOptions{};
    options.forwards.push_back(PasstForward{0, 80, false});
    CHECK_FALSE(Passt::start(options));
  }
  SECTION("a passt that fails to start: its log's tail") {
    if (!passt_installed()) {
      WARN("SKIP: passt is not installed (Debian package passt)");
      return;
    }
    PasstOptions options;
    options.template_interface = "husknosuch0";
    auto passt = Passt::start(options);
    REQUIRE_FALSE(passt);
    CHECK_THAT(passt.error().message, Catch::Contains("passt exited with status") && Catch::Contains("husknosuch0"));
  }
  SECTION("a binary that never gets ready times out") {
    test::TempDir temp;
    const std::string script = "#!/bin/sh\necho starting\nexec sleep 30\n";
    const std::string path = temp.write("fake-passt", std::vector<uint8_t>(script.begin(), script.end()));
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    PasstOptions options;
    options.binary = path;
    options.start_timeout = std::chrono::milliseconds(300);
    const auto before = std::chrono::steady_clock::now();
    auto passt = Passt::start(options);
    REQUIRE_FALSE(passt);
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(2000));
    CHECK_THAT(passt.error().message, Catch::Contains("not ready within 300 ms") && Catch::Contains("starting"));
  }
}

}  // namespace
}  // namespace husk::net
