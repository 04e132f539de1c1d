// The network report on the VMM channel (runtime/net/net_report_codec.h):
// a round trip keeps every field, a report over its size limit loses its
// least counted refusals (never its counters), and text from a VMM that
// could be compromised is bounded and typed.
#include "runtime/net/net_report_codec.h"

#include <string>

#include <catch2/catch.hpp>

namespace husk::net {
namespace {

NetReport sample(size_t refusals) {
  NetReport r;
  r.bytes_out = 1200;
  r.bytes_in = 53000;
  r.frames_out = 20;
  r.frames_in = 40;
  r.dropped_out = 3;
  r.dropped_in = 1;
  r.cap_reached = true;
  for (size_t i = 0; i < refusals; ++i) {
    r.refused.push_back(Refusal{"out", "tcp", "192.0.2." + std::to_string(i % 250), static_cast<uint16_t>(i + 1),
                                "not allowed", 1000 - i});
  }
  return r;
}

TEST_CASE("net report: a round trip keeps every field", "[unit][net]") {
  const NetReport r = sample(3);
  auto back = decode_report(encode_report(r, 30000));
  REQUIRE(back);
  CHECK(back->bytes_out == 1200);
  CHECK(back->bytes_in == 53000);
  CHECK(back->frames_out == 20);
  CHECK(back->frames_in == 40);
  CHECK(back->dropped_out == 3);
  CHECK(back->dropped_in == 1);
  CHECK(back->cap_reached);
  REQUIRE(back->refused.size() == 3);
  CHECK(back->refused[1].destination == "192.0.2.1");
  CHECK(back->refused[1].port == 2);
  CHECK(back->refused[1].count == 999);
  CHECK(back->refused[1].reason == "not allowed");
}

TEST_CASE("net report: over its size, the least counted refusals go, the counters stay", "[unit][net]") {
  const std::string text = encode_report(sample(256), 4000);
  CHECK(text.size() <= 4000);
  auto back = decode_report(text);
  REQUIRE(back);
  CHECK(back->bytes_in == 53000);
  REQUIRE_FALSE(back->refused.empty());
  CHECK(back->refused.size() < 256);
  CHECK(back->refused.front().count == 1000);  // the most counted kept
}

TEST_CASE("net report: what a compromised VMM might send is bounded or refused", "[unit][net]") {
  CHECK_FALSE(decode_report("not json"));
  CHECK_FALSE(decode_report("[1, 2]"));
  auto odd = decode_report(R"({"bytes_in": -5, "bytes_out": "many", "cap_reached": 1,
                               "refused": [7, {"destination": 5, "port": 99999, "count": 2}]})");
  REQUIRE(odd);
  CHECK(odd->bytes_in == 0);
  CHECK(odd->bytes_out == 0);
  CHECK_FALSE(odd->cap_reached);
  REQUIRE(odd->refused.size() == 1);
  CHECK(odd->refused[0].destination.empty());
  CHECK(odd->refused[0].port == 65535);
  std::string many = R"({"refused": [)";
  for (int i = 0; i < 400; ++i) many += std::string(i ? "," : "") + R"({"destination": ")" + std::string(1000, 'x') + R"("})";
  many += "]}";
  auto big = decode_report(many);
  REQUIRE(big);
  CHECK(big->refused.size() == 256);
  CHECK(big->refused[0].destination.size() == 256);
}

}  // namespace
}  // namespace husk::net
