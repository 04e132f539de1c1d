// The agent protocol codec (guest-agent/protocol/): every message round
// trips; truncated, oversized, unknown and malformed frames are refused;
// random and mutated input never crashes or decodes into garbage.
#include "guest-agent/protocol/protocol.h"

#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

namespace husk::agent::proto {
namespace {

// One instance of every message with every field away from its default.
AllMessages samples() {
  Exec exec;
  exec.argv = {"/bin/sh", "-c", "echo hi"};
  exec.env = {"PATH=/bin", "HOME=/root"};
  exec.cwd = "/tmp";
  exec.uid = 1000;
  exec.gid = 100;
  exec.stdin_mode = StdinMode::kData;
  exec.stdin_data = std::string("in\0put", 6);
  exec.pty = true;
  exec.rows = 50;
  exec.cols = 132;
  exec.limits = {1500, 900, 64u << 20, 32, 1u << 20, 256, 4u << 20};
  Exited exited{-1, 9, 1234, 567, 8u << 20, 99999, ExitReason::kMemoryLimit, true, false, true};
  ConfigureNetwork net;
  net.mac = {0x02, 0x68, 0x75, 0x73, 0x6b, 0x01};
  net.address = 0x0a00020f;
  net.prefix_len = 24;
  net.gateway = 0x0a000202;
  net.mtu = 65520;
  net.nameservers = {"10.0.2.3", "1.1.1.1"};
  net.hosts = {{"10.0.2.2", "host.husk.internal"}, {"10.0.2.15", "sandbox"}};
  return {Hello{1, 2, kFeatureCgroups | kFeaturePty},
          SetClock{1700000000123456789ull},
          Reseed{std::string("\x00\x01\xfe\xff entropy", 13)},
          net,
          SetHostname{"sandbox"},
          Shutdown{},
          exec,
          ExecArgs{{"arg", ""}, {"K=v"}},
          StdinData{std::string("\x00\xff\n", 3)},
          StdinClose{},
          Signal{15},
          Resize{50, 132},
          Credit{Stream::kStderr, 262144},
          WriteFile{"/work/in.txt", 0640, 1000, 1000, 262144, true, true, "chunk"},
          ReadFile{"/work/out.txt", 1u << 20},
          Stat{"/etc/passwd", false},
          Ack{},
          Error{2, "no such file"},
          Started{4242},
          Output{Stream::kStdout, std::string(1000, 'x')},
          exited,
          ExecFailed{ExecStage::kChdir, 13},
          FileData{524288, true, "tail"},
          StatResult{0100644, 12345, 1, 2, -5},
          BootInfo{},
          BootReport{{{"kernel_start", 0}, {"agent_ready", 812345}}}};
}

template <typename F>
void for_each_sample(F&& f) {
  std::apply([&](const auto&... m) { (f(m), ...); }, samples());
}

template <typename M>
std::vector<uint8_t> frame_of(const M& m, uint32_t id = 7) {
  std::vector<uint8_t> buf;
  REQUIRE(append_frame(buf, id, m) == Status::kOk);
  return buf;
}

void set_length(std::vector<uint8_t>& buf, uint32_t body) {
  for (int i = 0; i < 4; ++i) buf[size_t(i)] = uint8_t(body >> (8 * i));
}

// Tries to decode `frame` as every message type; returns how many accepted.
int decode_any(const FrameView& frame) {
  int accepted = 0;
  std::apply([&](auto... m) { ((accepted += decode(frame, m) == Status::kOk), ...); }, AllMessages{});
  return accepted;
}

TEST_CASE("every message round-trips through a frame", "[unit][agent][protocol]") {
  for_each_sample([](const auto& msg) {
    using M = std::decay_t<decltype(msg)>;
    const std::vector<uint8_t> buf = frame_of(msg, 0xdeadbeef);
    FrameView frame;
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    CHECK(frame.size == buf.size());
    CHECK(frame.type == uint16_t(M::kType));
    CHECK(frame.id == 0xdeadbeef);
    M back;
    REQUIRE(decode(frame, back) == Status::kOk);
    CHECK(back == msg);
    CHECK(decode_any(frame) == 1);  // no other type accepts it
  });
}

TEST_CASE("OutputView is encoded exactly as Output", "[unit][agent][protocol]") {
  const std::string data("out\0put\xff", 8);
  for (Stream stream : {Stream::kStdout, Stream::kStderr}) {
    const std::span bytes(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    CHECK(frame_of(OutputView{stream, bytes}, 9) == frame_of(Output{stream, data}, 9));
  }
  // The agent's in-place frames: header, then the data read after it.
  std::vector<uint8_t> in_place(kOutputHeaderSize);
  REQUIRE(put_output_header(std::span<uint8_t, kOutputHeaderSize>(in_place.data(), kOutputHeaderSize), 9,
                            Stream::kStderr, data.size()) == Status::kOk);
  in_place.insert(in_place.end(), data.begin(), data.end());
  CHECK(in_place == frame_of(Output{Stream::kStderr, data}, 9));
  CHECK(put_output_header(std::span<uint8_t, kOutputHeaderSize>(in_place.data(), kOutputHeaderSize), 9,
                          Stream::kStdout, kMaxFrameBody) == Status::kTooLarge);

  // Decoded in place: the view points into the frame's own bytes.
  const std::vector<uint8_t> buf = frame_of(Output{Stream::kStderr, data});
  FrameView frame;
  REQUIRE(peek_frame(buf, frame) == Status::kOk);
  OutputView view;
  REQUIRE(decode(frame, view) == Status::kOk);
  CHECK(view.stream == Stream::kStderr);
  CHECK(std::string(view.data.begin(), view.data.end()) == data);
  CHECK(view.data.data() >= buf.data());
  CHECK(view.data.data() + view.data.size() == buf.data() + buf.size());

  std::vector<uint8_t> out;
  const std::vector<uint8_t> big(kMaxPayload + 1, 0);
  CHECK(append_frame(out, 1, OutputView{Stream::kStdout, big}) == Status::kTooLarge);
  CHECK(out.empty());
}

TEST_CASE("frames back to back are found one after the other", "[unit][agent][protocol]") {
  std::vector<uint8_t> buf;
  REQUIRE(append_frame(buf, 1, Started{10}) == Status::kOk);
  REQUIRE(append_frame(buf, 2, Output{Stream::kStderr, "e"}) == Status::kOk);
  FrameView a, b;
  REQUIRE(peek_frame(buf, a) == Status::kOk);
  REQUIRE(peek_frame(std::span(buf).subspan(a.size), b) == Status::kOk);
  CHECK(a.id == 1);
  CHECK(b.id == 2);
  CHECK(a.size + b.size == buf.size());
}

TEST_CASE("a truncated frame asks for more bytes", "[unit][agent][protocol]") {
  for_each_sample([](const auto& msg) {
    const std::vector<uint8_t> buf = frame_of(msg);
    for (size_t n = 0; n < buf.size(); ++n) {
      FrameView frame;
      CHECK(peek_frame(std::span(buf.data(), n), frame) == Status::kNeedMore);
    }
  });
}

TEST_CASE("a payload cut short or with bytes left over is malformed", "[unit][agent][protocol]") {
  for_each_sample([](const auto& msg) {
    using M = std::decay_t<decltype(msg)>;
    const std::vector<uint8_t> full = frame_of(msg);
    const size_t payload = full.size() - kHeaderSize;
    for (size_t cut = 1; cut <= std::min<size_t>(payload, 64); ++cut) {
      std::vector<uint8_t> buf(full.begin(), full.end() - static_cast<ptrdiff_t>(cut));
      set_length(buf, uint32_t(buf.size() - kLengthSize));
      FrameView frame;
      REQUIRE(peek_frame(buf, frame) == Status::kOk);
      M back;
      CHECK(decode(frame, back) == Status::kMalformed);
    }
    std::vector<uint8_t> longer = full;
    longer.push_back(0);
    set_length(longer, uint32_t(longer.size() - kLengthSize));
    FrameView frame;
    REQUIRE(peek_frame(longer, frame) == Status::kOk);
    M back;
    CHECK(decode(frame, back) == Status::kMalformed);
  });
}

TEST_CASE("oversized frames are refused before their body arrives", "[unit][agent][protocol]") {
  std::vector<uint8_t> buf(kHeaderSize, 0);
  set_length(buf, uint32_t(kMaxFrameBody + 1));
  FrameView frame;
  CHECK(peek_frame(buf, frame) == Status::kTooLarge);
  set_length(buf, 0xffffffffu);
  CHECK(peek_frame(std::span(buf.data(), 4), frame) == Status::kTooLarge);

  // The sender refuses to build one, and leaves its buffer as it was.
  std::vector<uint8_t> out = {1, 2, 3};
  StdinData big{std::string(kMaxFrameBody, 'a')};
  CHECK(append_frame(out, 1, big) == Status::kTooLarge);
  CHECK(out == std::vector<uint8_t>{1, 2, 3});
  // The largest payload that fits is accepted.
  StdinData fits{std::string(kMaxPayload - 4, 'a')};
  CHECK(append_frame(out, 1, fits) == Status::kOk);
  CHECK(out.size() == 3 + kLengthSize + kMaxFrameBody);
}

TEST_CASE("unknown types and bad header lengths are refused", "[unit][agent][protocol]") {
  std::vector<uint8_t> buf = frame_of(Ack{});
  buf[4] = 0x77;
  buf[5] = 0x77;
  FrameView frame;
  CHECK(peek_frame(buf, frame) == Status::kUnknownType);
  CHECK(frame.size == buf.size());  // still skippable
  CHECK(frame.type == 0x7777);

  for (uint32_t body = 0; body < 6; ++body) {
    std::vector<uint8_t> shorty(16, 0);
    set_length(shorty, body);
    CHECK(peek_frame(shorty, frame) == Status::kMalformed);
  }

  std::vector<uint8_t> ack = frame_of(Ack{});
  REQUIRE(peek_frame(ack, frame) == Status::kOk);
  Started started;
  CHECK(decode(frame, started) == Status::kWrongType);
}

TEST_CASE("bad field values are refused", "[unit][agent][protocol]") {
  FrameView frame;
  SECTION("a blob length past the end") {
    std::vector<uint8_t> buf = frame_of(StdinData{"abc"});
    buf[kHeaderSize] = 4;  // claims 4 bytes, 3 follow
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    StdinData m;
    CHECK(decode(frame, m) == Status::kMalformed);
  }
  SECTION("a huge list count allocates nothing and fails") {
    Exec exec;
    std::vector<uint8_t> buf = frame_of(exec);
    for (int i = 0; i < 4; ++i) buf[kHeaderSize + size_t(i)] = 0xff;  // argv count
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    CHECK(decode(frame, exec) == Status::kMalformed);
  }
  SECTION("a bool that is neither 0 nor 1") {
    std::vector<uint8_t> buf = frame_of(Stat{"/x", true});
    buf.back() = 2;
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    Stat m;
    CHECK(decode(frame, m) == Status::kMalformed);
  }
  SECTION("an enum past its last value") {
    std::vector<uint8_t> buf = frame_of(Credit{Stream::kStdout, 1});
    buf[kHeaderSize] = uint8_t(Stream::kCount);
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    Credit m;
    CHECK(decode(frame, m) == Status::kMalformed);
  }
  SECTION("a NUL inside a path or argv") {
    std::vector<uint8_t> buf = frame_of(ReadFile{std::string("/etc\0/x", 7), 0});
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    ReadFile m;
    CHECK(decode(frame, m) == Status::kMalformed);
    Exec exec;
    exec.argv = {std::string("a\0b", 3)};
    buf = frame_of(exec);
    REQUIRE(peek_frame(buf, frame) == Status::kOk);
    CHECK(decode(frame, exec) == Status::kMalformed);
  }
}

TEST_CASE("random bytes never crash the decoder", "[unit][agent][protocol]") {
  std::mt19937 rng(12345);
  for (int i = 0; i < 4000; ++i) {
    std::vector<uint8_t> buf(rng() % 512);
    for (uint8_t& b : buf) b = uint8_t(rng());
    // Half the time, give it a plausible header so decoding is reached.
    if (buf.size() >= kHeaderSize && (i & 1)) {
      set_length(buf, uint32_t(buf.size() - kLengthSize));
      const auto types = std::apply([](auto... m) { return std::vector<uint16_t>{uint16_t(decltype(m)::kType)...}; },
                                    AllMessages{});
      const uint16_t t = types[rng() % types.size()];
      buf[4] = uint8_t(t);
      buf[5] = uint8_t(t >> 8);
    }
    size_t off = 0;
    FrameView frame;
    while (off < buf.size()) {
      const Status s = peek_frame(std::span(buf).subspan(off), frame);
      if (s != Status::kOk && s != Status::kUnknownType) break;
      REQUIRE(frame.size <= buf.size() - off);
      if (s == Status::kOk) CHECK(decode_any(frame) <= 1);
      off += frame.size;
    }
  }
}

TEST_CASE("mutated valid frames never crash the decoder", "[unit][agent][protocol]") {
  std::mt19937 rng(777);
  std::vector<std::vector<uint8_t>> frames;
  for_each_sample([&](const auto& msg) { frames.push_back(frame_of(msg)); });
  for (int i = 0; i < 4000; ++i) {
    std::vector<uint8_t> buf = frames[rng() % frames.size()];
    const int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) buf[rng() % buf.size()] = uint8_t(rng());
    FrameView frame;
    if (peek_frame(buf, frame) == Status::kOk) {
      REQUIRE(frame.size <= buf.size());
      CHECK(decode_any(frame) <= 1);
    }
  }
}

}  // namespace
}  // namespace husk::agent::proto
