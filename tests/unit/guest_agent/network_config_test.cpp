// ConfigureNetwork (guest-agent/protocol/protocol.h, network.h): the list
// bounds its decoder enforces, and every refusal of network_config_error,
// which both the host (before sending) and the agent (before acting) run.
#include "guest-agent/protocol/network.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace husk::agent::proto {
namespace {

ConfigureNetwork good() {
  ConfigureNetwork m;
  m.mac = {0x02, 0x68, 0x75, 0x73, 0x6b, 0x01};
  m.address = 0x0a00020f;  // 10.0.2.15
  m.prefix_len = 24;
  m.gateway = 0x0a000202;  // 10.0.2.2
  m.mtu = 1500;
  m.nameservers = {"10.0.2.3"};
  m.hosts = {{"10.0.2.2", "host.husk.internal"}};
  return m;
}

// A ConfigureNetwork frame with lists as long as the caller likes: the
// Writer's own list methods refuse more than the bounds, so this one writes
// the counts itself.
std::vector<uint8_t> frame_with(const std::vector<std::string>& nameservers, const std::vector<HostEntry>& hosts) {
  std::vector<uint8_t> buf(kLengthSize);
  Writer w(buf);
  w.u16(uint16_t(MsgType::kConfigureNetwork));
  w.u32(3);
  for (uint8_t b : good().mac) w.u8(b);
  w.u32(0x0a00020f);
  w.u8(24);
  w.u32(0);
  w.u32(0);
  w.cstr_list(nameservers);
  w.list(hosts, kMaxListItems);
  const size_t body = buf.size() - kLengthSize;
  for (size_t i = 0; i < kLengthSize; ++i) buf[i] = uint8_t(body >> (8 * i));
  return buf;
}

Status decode_bytes(const std::vector<uint8_t>& buf, ConfigureNetwork& out) {
  FrameView frame;
  REQUIRE(peek_frame(buf, frame) == Status::kOk);
  return decode(frame, out);
}

std::string error_of(void (*change)(ConfigureNetwork&)) {
  ConfigureNetwork m = good();
  change(m);
  return network_config_error(m);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_CASE("ConfigureNetwork: lists up to their bounds decode, longer ones are malformed", "[unit][agent][protocol]") {
  ConfigureNetwork m;
  const std::vector<std::string> eight(kMaxNameservers, "10.0.2.3");
  const std::vector<HostEntry> thirty_two(kMaxHostEntries, HostEntry{"10.0.2.2", "h"});
  REQUIRE(decode_bytes(frame_with(eight, thirty_two), m) == Status::kOk);
  CHECK(m.nameservers == eight);
  CHECK(m.hosts == thirty_two);
  CHECK(network_config_error(m).empty());

  CHECK(decode_bytes(frame_with(std::vector<std::string>(kMaxNameservers + 1, "10.0.2.3"), {}), m) ==
        Status::kMalformed);
  CHECK(decode_bytes(frame_with({}, std::vector<HostEntry>(kMaxHostEntries + 1, HostEntry{"10.0.2.2", "h"})), m) ==
        Status::kMalformed);
  // A count claiming far more entries than the bytes hold allocates nothing.
  std::vector<uint8_t> buf = frame_with({}, {});
  for (size_t i = buf.size() - 4; i < buf.size(); ++i) buf[i] = 0xff;
  CHECK(decode_bytes(buf, m) == Status::kMalformed);
  // A NUL in a name would cut it in the file the agent writes.
  CHECK(decode_bytes(frame_with({}, {HostEntry{"10.0.2.2", std::string("a\0b", 3)}}), m) == Status::kMalformed);

  // The sender refuses to encode past the bounds.
  ConfigureNetwork big = good();
  big.nameservers.assign(kMaxNameservers + 1, "10.0.2.3");
  std::vector<uint8_t> out;
  CHECK(append_frame(out, 1, big) == Status::kTooLarge);
  big = good();
  big.hosts.assign(kMaxHostEntries + 1, HostEntry{"10.0.2.2", "h"});
  CHECK(append_frame(out, 1, big) == Status::kTooLarge);
  CHECK(out.empty());
}

TEST_CASE("ConfigureNetwork: a good request passes the checks, every bad field is named", "[unit][agent][protocol]") {
  CHECK(network_config_error(good()) == "");
  CHECK(error_of([](ConfigureNetwork& m) { m.gateway = 0; }) == "");  // no default route
  CHECK(error_of([](ConfigureNetwork& m) { m.mtu = 0; }) == "");      // the kernel's MTU
  CHECK(error_of([](ConfigureNetwork& m) { m.nameservers.clear(); }) == "");
  CHECK(error_of([](ConfigureNetwork& m) { m.hosts.push_back({"::1", "ip6-localhost"}); }) == "");
  CHECK(error_of([](ConfigureNetwork& m) { m.prefix_len = 32; }) == "");

  CHECK(has(error_of([](ConfigureNetwork& m) { m.mac = {}; }), "MAC address 00:00:00:00:00:00"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.mac[0] = 0x03; }), "03:68:75:73:6b:01 is a multicast"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.address = 0; }), "no IPv4 address"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.prefix_len = 0; }), "prefix length 0"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.prefix_len = 33; }), "prefix length 33"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.gateway = m.address; }), "gateway 10.0.2.15 is the interface's own"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.mtu = 67; }), "MTU 67"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.mtu = 65536; }), "MTU 65536"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.nameservers.assign(9, "1.1.1.1"); }), "9 nameservers (at most 8)"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.nameservers = {"dns.example"}; }), "nameserver 'dns.example'"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.nameservers = {"1.1.1.1\nnameserver 6.6.6.6"}; }),
            "is not an IPv4 address"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.nameservers = {"::1"}; }), "is not an IPv4 address"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.hosts.assign(33, HostEntry{"10.0.2.2", "h"}); }),
            "33 host entries (at most 32)"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.hosts = {{"10.0.2", "h"}}; }), "address '10.0.2'"));
  CHECK(has(error_of([](ConfigureNetwork& m) { m.hosts = {{"10.0.2.2", "a b"}}; }), "name 'a b'"));
  CHECK(error_of([](ConfigureNetwork& m) { m.hosts = {{"10.0.2.2", "x\n1.2.3.4 evil"}}; }) ==
        "host entry name 'x?1.2.3.4 evil' is not a valid hostname");
  CHECK(error_of([](ConfigureNetwork& m) { m.hosts = {{"10.0.2.2", std::string(300, 'a')}}; }) ==
        "host entry name '" + std::string(64, 'a') + "' is not a valid hostname");
}

TEST_CASE("ConfigureNetwork: hostnames as RFC 1123 has them, at most 253 characters", "[unit][agent][protocol]") {
  for (const char* ok : {"a", "host.husk.internal", "x-1.example", "0day", "A.B.C"}) {
    INFO(ok);
    CHECK(valid_hostname(ok));
  }
  for (const char* bad : {"", ".", "a.", ".a", "a..b", "-a", "a-", "a.-b", "a_b", "a b", "a#b", "é"}) {
    INFO(bad);
    CHECK_FALSE(valid_hostname(bad));
  }
  CHECK(valid_hostname(std::string(63, 'a')));
  CHECK_FALSE(valid_hostname(std::string(64, 'a')));
  // 4 labels of 63 and the dots: 255; three and a 61: 253.
  const std::string label(63, 'b');
  CHECK(valid_hostname(label + "." + label + "." + label + "." + std::string(61, 'c')));
  CHECK_FALSE(valid_hostname(label + "." + label + "." + label + "." + std::string(62, 'c')));
}

TEST_CASE("ConfigureNetwork: addresses as text", "[unit][agent][protocol]") {
  CHECK(ipv4_text(0x0a00020f) == "10.0.2.15");
  CHECK(ipv4_text(0xffffffff) == "255.255.255.255");
  CHECK(ipv4_text(0) == "0.0.0.0");
  CHECK(mac_text({0x02, 0x00, 0xab, 0xcd, 0xef, 0x10}) == "02:00:ab:cd:ef:10");
}

}  // namespace
}  // namespace husk::agent::proto
