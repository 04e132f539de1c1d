// Exec requests in parts (guest-agent/protocol/exec_args.h): what the host
// splits, the agent's collector puts back together in order through real
// frames; the byte bound holds per request and over all requests being
// collected, and a refused request stays refused until its Exec.
#include "guest-agent/protocol/exec_args.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace husk::agent::proto {
namespace {

std::vector<std::string> numbered(size_t n, const std::string& prefix = "") {
  std::vector<std::string> v;
  for (size_t i = 0; i < n; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

// Encodes and decodes through a frame, as the wire would.
template <typename M>
M through_frame(const M& msg, uint32_t id) {
  std::vector<uint8_t> buf;
  REQUIRE(append_frame(buf, id, msg) == Status::kOk);
  FrameView frame;
  REQUIRE(peek_frame(buf, frame) == Status::kOk);
  REQUIRE(frame.id == id);
  M back;
  REQUIRE(decode(frame, back) == Status::kOk);
  return back;
}

TEST_CASE("exec args: split, sent as frames and collected, come back in order", "[unit][agent][protocol]") {
  Exec exec;
  exec.argv = {"sh", "-c", "echo $#", "sh"};
  for (std::string& a : numbered(100000)) exec.argv.push_back(std::move(a));
  exec.env = numbered(70000, "V=");
  exec.env.push_back("BIG=" + std::string(100000, 'x'));
  exec.cwd = "/tmp";
  const Exec original = exec;
  REQUIRE(exec_arg_bytes(exec.argv, exec.env) < kMaxExecArgBytes);

  // Too large for one frame: 100004 items are past kMaxListItems.
  std::vector<uint8_t> one;
  CHECK(append_frame(one, 5, exec) == Status::kTooLarge);

  const std::vector<ExecArgs> parts = split_exec_args(exec);
  CHECK(exec.argv.empty());
  CHECK(exec.env.empty());
  REQUIRE(parts.size() > 2);
  ExecArgsCollector collector;
  for (const ExecArgs& part : parts) {
    size_t payload = 0;
    for (const auto* l : {&part.argv, &part.env}) {
      CHECK(l->size() <= kMaxListItems);
      for (const std::string& s : *l) payload += 4 + s.size();
    }
    CHECK(payload <= kExecArgsPartBytes);
    CHECK(collector.add(5, through_frame(part, 5)) == ExecArgsCollector::Outcome::kOk);
  }
  CHECK(collector.pending() == 1);
  Exec arrived = through_frame(exec, 5);
  REQUIRE(collector.finish(5, arrived) == ExecArgsCollector::Outcome::kOk);
  CHECK(arrived == original);
  CHECK(collector.pending() == 0);
  CHECK(collector.bytes() == 0);
}

TEST_CASE("exec args: the Exec's own items follow the parts' items", "[unit][agent][protocol]") {
  ExecArgsCollector collector;
  REQUIRE(collector.add(1, ExecArgs{{"a", "b"}, {"X=1"}}) == ExecArgsCollector::Outcome::kOk);
  REQUIRE(collector.add(1, ExecArgs{{"c"}, {}}) == ExecArgsCollector::Outcome::kOk);
  Exec exec;
  exec.argv = {"d"};
  exec.env = {"Y=2"};
  REQUIRE(collector.finish(1, exec) == ExecArgsCollector::Outcome::kOk);
  CHECK(exec.argv == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(exec.env == std::vector<std::string>{"X=1", "Y=2"});

  // Another id's Exec is untouched by nothing pending.
  Exec plain;
  plain.argv = {"true"};
  CHECK(collector.finish(2, plain) == ExecArgsCollector::Outcome::kOk);
  CHECK(plain.argv == std::vector<std::string>{"true"});
}

TEST_CASE("exec args: past the bound the request is refused, once, and the rest dropped",
          "[unit][agent][protocol]") {
  ExecArgsCollector collector;
  // 4 MiB strings counted as Linux does: length + NUL + pointer.
  const std::string big(4u << 20, 'a');
  const uint64_t each = exec_arg_bytes(big);
  REQUIRE(collector.add(7, ExecArgs{{big}, {}}) == ExecArgsCollector::Outcome::kOk);
  CHECK(collector.bytes() == each);
  CHECK(collector.add(7, ExecArgs{{big}, {}}) == ExecArgsCollector::Outcome::kTooLarge);
  CHECK(collector.bytes() == 0);  // the refused request holds nothing
  // Later parts and the Exec are dropped without a second answer.
  CHECK(collector.add(7, ExecArgs{{"x"}, {}}) == ExecArgsCollector::Outcome::kRefused);
  Exec exec;
  exec.argv = {"echo"};
  CHECK(collector.finish(7, exec) == ExecArgsCollector::Outcome::kRefused);
  CHECK(collector.pending() == 0);
  // The id is free again afterwards.
  CHECK(collector.add(7, ExecArgs{{"x"}, {}}) == ExecArgsCollector::Outcome::kOk);
}

TEST_CASE("exec args: the bound covers all requests being collected", "[unit][agent][protocol]") {
  ExecArgsCollector collector;
  const std::string third(3u << 20, 'b');
  CHECK(collector.add(1, ExecArgs{{third}, {}}) == ExecArgsCollector::Outcome::kOk);
  CHECK(collector.add(2, ExecArgs{{third}, {}}) == ExecArgsCollector::Outcome::kOk);
  CHECK(collector.add(3, ExecArgs{{third}, {}}) == ExecArgsCollector::Outcome::kTooLarge);
  // The Exec's own items count too.
  Exec exec;
  exec.argv = {std::string(6u << 20, 'c')};
  CHECK(collector.finish(2, exec) == ExecArgsCollector::Outcome::kTooLarge);
  CHECK(collector.bytes() == exec_arg_bytes(third));  // request 1's

  for (uint32_t id = 10; id < 10 + kMaxPendingExecs - 2; ++id) {
    CHECK(collector.add(id, ExecArgs{{"x"}, {}}) == ExecArgsCollector::Outcome::kOk);
  }
  CHECK(collector.pending() == kMaxPendingExecs);
  CHECK(collector.add(99, ExecArgs{{"x"}, {}}) == ExecArgsCollector::Outcome::kTooMany);
  CHECK(collector.pending() == kMaxPendingExecs);
  collector.clear();
  CHECK(collector.pending() == 0);
  CHECK(collector.bytes() == 0);
}

}  // namespace
}  // namespace husk::agent::proto
