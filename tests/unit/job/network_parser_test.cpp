// Tests for the job file's [network] table (runtime/job/network_parser.h)
// against docs/job-file.md: closed by default, every key with a good value,
// and each bad one with FILE:LINE:COLUMN, the element and what was expected.
#include "runtime/job/job_parser.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/job/job_test_support.h"

namespace husk::job {
namespace {

using namespace testing;

TEST_CASE("network: closed by default, mode none has no other key", "[job]") {
  JobDir d;
  CHECK(d.ok(with_process("")).network.mode == net::NetMode::kNone);
  CHECK(d.ok(with_process("[network]\nmode = \"none\"\n")).network.mode == net::NetMode::kNone);
  CHECK(d.ok(with_process("[network]\n")).network.mode == net::NetMode::kNone);
  const std::string text = with_process("[network]\nmode = \"host\"\n");
  d.expect_error(text, "\"host\"", "network.mode", "\"egress\"");
  d.expect_error(with_process("[network]\nmode = 0\n"), "0\n", "network.mode", "expected a string");
  // A key that needs a network, without one, is refused rather than ignored.
  d.expect_error(with_process("[network]\nallow = [\"a.example:80\"]\n"), "[\"a", "network.allow",
                 "needs network.mode");
}

TEST_CASE("network: egress with every key", "[job]") {
  JobDir d;
  const Job job = d.ok(with_process(R"([network]
mode = "egress"
backend = "tap"
allow = ["mirror.example.org:443", "10.0.0.0/8", "*.example.com:8000-8100", "host.husk.internal:3142"]
publish = ["8080:80", "5353:53/udp"]
dns = ["192.0.2.53"]
bandwidth = "10MiB/s"
packets_per_second = 5000
max_bytes = "1GiB"
)"));
  const net::NetworkSpec& n = job.network;
  CHECK(n.mode == net::NetMode::kEgress);
  CHECK(n.backend == net::BackendKind::kTap);
  REQUIRE(n.allow.size() == 4);
  CHECK(n.allow[0].kind == net::AllowRule::Kind::kName);
  CHECK(n.allow[0].name == "mirror.example.org");
  CHECK(n.allow[0].ports.first == 443);
  CHECK(n.allow[1].kind == net::AllowRule::Kind::kCidr);
  CHECK(n.allow[2].kind == net::AllowRule::Kind::kWildcard);
  CHECK(n.allow[2].ports.last == 8100);
  CHECK(n.allow[3].kind == net::AllowRule::Kind::kHostAlias);
  REQUIRE(n.publish.size() == 2);
  CHECK(n.publish[0].host_port == 8080);
  CHECK(n.publish[0].guest_port == 80);
  CHECK(n.publish[1].protocol == net::Protocol::kUdp);
  CHECK(n.dns == std::vector<std::string>{"192.0.2.53"});
  CHECK(n.rate.bytes_per_second == 10ull << 20);
  CHECK(n.rate.frames_per_second == 5000);
  CHECK(n.max_bytes == 1ull << 30);
  CHECK(d.ok(with_process("[network]\nmode = \"open\"\nbandwidth = \"512KiB\"\n")).network.rate.bytes_per_second ==
        512 * 1024);
}

TEST_CASE("network: each bad value names its element and what was expected", "[job]") {
  JobDir d;
  const std::string bad_rule = with_process("[network]\nmode = \"egress\"\nallow = [\"ok.example:80\", \"x.example:99999\"]\n");
  d.expect_error(bad_rule, "[\"ok", "network.allow[1]", "99999");
  d.expect_error(with_process("[network]\nmode = \"egress\"\n"), "\"egress\"", "network.mode", "network.allow");
  d.expect_error(with_process("[network]\nmode = \"open\"\nallow = [\"a.example\"]\n"), "[\"a", "network.allow",
                 "only for mode");
  d.expect_error(with_process("[network]\nmode = \"open\"\npublish = [\"80:http\"]\n"), "[\"80", "network.publish[0]",
                 "80:http");
  d.expect_error(with_process("[network]\nmode = \"open\"\ndns = [\"resolver\"]\n"), "[\"resolver", "network.dns[0]",
                 "IPv4");
  d.expect_error(with_process("[network]\nmode = \"open\"\nbandwidth = \"fast\"\n"), "\"fast\"", "network.bandwidth",
                 "10MiB/s");
  d.expect_error(with_process("[network]\nmode = \"open\"\nbackend = \"slirp\"\n"), "\"slirp\"", "network.backend",
                 "passt");
  d.expect_error(with_process("[vm]\nstart = \"snapshot\"\n[network]\nmode = \"open\"\n"), "\"open\"", "network.mode",
                 "snapshot");
}

}  // namespace
}  // namespace husk::job
