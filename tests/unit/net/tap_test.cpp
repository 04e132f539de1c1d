// TapDevice on the real kernel (root only): the interface, its address,
// frames both ways through a tap link, and that it is gone once the last fd
// closes.
#include "runtime/net/tap.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/deadline.h"
#include "runtime/net/frame_link.h"

namespace husk::net {
namespace {

using Frame = std::vector<uint8_t>;

bool can_make_taps() {
  if (::geteuid() != 0) {
    WARN("SKIP: tap tests need root (CAP_NET_ADMIN)");
    return false;
  }
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
    WARN("SKIP: no /dev/net/tun");
    return false;
  }
  return true;
}

bool interface_exists(const std::string& name) { return std::filesystem::exists("/sys/class/net/" + name); }

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string ioctl_address(const std::string& name, unsigned long request) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), request, &ifr) < 0) return "error";
  sockaddr_in sin{};
  std::memcpy(&sin, &ifr.ifr_addr, sizeof sin);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
  return text;
}

bool wait_gone(const std::string& name) {
  const Deadline deadline = Deadline::after(std::chrono::milliseconds(2000));
  while (interface_exists(name) && !deadline.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !interface_exists(name);
}

uint16_t get16(const Frame& f, size_t at) { return static_cast<uint16_t>((f[at] << 8) | f[at + 1]); }

std::optional<Frame> receive_matching(FrameLink& link, bool (*wanted)(const Frame&)) {
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

TEST_CASE("tap: the interface, its address, frames both ways, gone on close", "[net][tap]") {
  if (!can_make_taps()) return;
  TapOptions options;
  options.host_address = "10.213.77.1";
  options.prefix = 30;
  options.mtu = 1400;
  auto tap = TapDevice::create(options);
  REQUIRE(tap);
  const std::string name = tap->name();
  CHECK(name.rfind("husk", 0) == 0);
  REQUIRE(interface_exists(name));
  CHECK(ioctl_address(name, SIOCGIFADDR) == "10.213.77.1");
  CHECK(ioctl_address(name, SIOCGIFNETMASK) == "255.255.255.252");
  CHECK(read_line("/sys/class/net/" + name + "/mtu") == "1400");
  const unsigned long flags = std::stoul(read_line("/sys/class/net/" + name + "/flags"), nullptr, 16);
  CHECK((flags & IFF_UP) != 0);

  auto copy = tap->duplicate();
  REQUIRE(copy);
  auto link = make_tap_link(std::move(*copy));
  REQUIRE(link);

  // The host sends to the guest's address: first an ARP request on the tap.
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  REQUIRE(udp);
  sockaddr_in guest{};
  guest.sin_family = AF_INET;
  guest.sin_port = htons(7777);
  REQUIRE(::inet_pton(AF_INET, "10.213.77.2", &guest.sin_addr) == 1);
  REQUIRE(::sendto(udp.get(), "ping", 4, 0, reinterpret_cast<sockaddr*>(&guest), sizeof guest) == 4);
  auto arp = receive_matching(**link, [](const Frame& f) {
    return f.size() >= 42 && get16(f, 12) == 0x0806 && get16(f, 20) == 1 && f[38] == 10 && f[39] == 213 &&
           f[40] == 77 && f[41] == 2;
  });
  REQUIRE(arp);
  const Frame host_mac(arp->begin() + 6, arp->begin() + 12);

  // The guest answers the ARP: the kernel then sends the queued datagram.
  const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};
  Frame reply(host_mac.begin(), host_mac.end());
  reply.insert(reply.end(), guest_mac, guest_mac + 6);
  const uint8_t arp_reply[] = {0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2};
  reply.insert(reply.end(), std::begin(arp_reply), std::end(arp_reply));
  reply.insert(reply.end(), guest_mac, guest_mac + 6);
  const uint8_t guest_ip[] = {10, 213, 77, 2};
  const uint8_t host_ip[] = {10, 213, 77, 1};
  reply.insert(reply.end(), std::begin(guest_ip), std::end(guest_ip));
  reply.insert(reply.end(), host_mac.begin(), host_mac.end());
  reply.insert(reply.end(), std::begin(host_ip), std::end(host_ip));
  reply.resize(60, 0);
  auto sent = (*link)->send(reply);
  REQUIRE(sent);
  CHECK(*sent == FrameLink::SendStatus::kSent);
  auto datagram = receive_matching(**link, [](const Frame& f) {
    return f.size() >= 46 && get16(f, 12) == 0x0800 && f[23] == 17 && get16(f, 36) == 7777;
  });
  REQUIRE(datagram);
  CHECK(Frame(datagram->begin(), datagram->begin() + 6) == Frame(guest_mac, guest_mac + 6));
  CHECK(std::string(datagram->begin() + 42, datagram->begin() + 46) == "ping");

  // A runt frame is dropped like on a wire, not an error.
  const Frame runt(10, 0);
  auto dropped = (*link)->send(runt);
  REQUIRE(dropped);

  // The copy keeps the interface; the last close removes it.
  { TapDevice gone = std::move(*tap); }
  CHECK(interface_exists(name));
  link->reset();
  CHECK(wait_gone(name));
}

TEST_CASE("tap: no address, and bad options", "[net][tap]") {
  SECTION("bad options") {
    TapOptions options;
    options.host_address = "10.0.0";
    CHECK_FALSE(TapDevice::create(options));
    options = TapOptions{};
    options.name_template = "a-name-far-too-long-for-linux";
    CHECK_FALSE(TapDevice::create(options));
    options = TapOptions{};
    options.mtu = 10;
    CHECK_FALSE(TapDevice::create(options));
  }
  SECTION("no address: up, without IPv4") {
    if (!can_make_taps()) return;
    auto tap = TapDevice::create(TapOptions{});
    REQUIRE(tap);
    const std::string name = tap->name();
    CHECK(ioctl_address(name, SIOCGIFADDR) == "error");
    CHECK(read_line("/sys/class/net/" + name + "/mtu") == "1500");
    { TapDevice gone = std::move(*tap); }
    CHECK(wait_gone(name));
  }
  SECTION("two taps get two names") {
    if (!can_make_taps()) return;
    auto a = TapDevice::create(TapOptions{});
    auto b = TapDevice::create(TapOptions{});
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->name() != b->name());
  }
}

}  // namespace
}  // namespace husk::net
