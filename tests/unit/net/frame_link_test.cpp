// FrameLink: the stream link on a real socketpair (frames split at every
// byte, many frames per read, a full socket buffer, bad lengths, the peer
// going away) and the tap link's framing on a SOCK_SEQPACKET pair, which
// keeps message boundaries the way a tap fd does.
#include "runtime/net/frame_link.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace husk::net {
namespace {

struct Pair {
  std::unique_ptr<FrameLink> link;
  UniqueFd peer;  // blocking, the other end
};

Pair make_pair(int type = SOCK_STREAM) {
  int fds[2] = {-1, -1};
  REQUIRE(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) == 0);
  Pair pair;
  pair.peer = UniqueFd(fds[1]);
  auto link = type == SOCK_STREAM ? make_stream_link(UniqueFd(fds[0])) : make_tap_link(UniqueFd(fds[0]));
  REQUIRE(link);
  pair.link = std::move(*link);
  return pair;
}

std::vector<uint8_t> frame_of(size_t size, uint8_t seed) {
  std::vector<uint8_t> frame(size);
  for (size_t i = 0; i < size; ++i) frame[i] = static_cast<uint8_t>(seed + i * 7);
  return frame;
}

std::vector<uint8_t> encode(const std::vector<uint8_t>& frame) {
  const auto n = static_cast<uint32_t>(frame.size());
  std::vector<uint8_t> out = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
                              static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  out.insert(out.end(), frame.begin(), frame.end());
  return out;
}

void write_all(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    REQUIRE(n > 0);
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void write_all(int fd, const std::vector<uint8_t>& bytes) { write_all(fd, bytes.data(), bytes.size()); }

std::vector<uint8_t> to_vector(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

TEST_CASE("stream link: a frame split at every byte boundary", "[net][frame_link]") {
  auto [link, peer] = make_pair();
  const auto frame = frame_of(61, 3);
  const auto wire = encode(frame);
  for (size_t split = 1; split < wire.size(); ++split) {
    write_all(peer.get(), wire.data(), split);
    auto none = link->receive();
    REQUIRE(none);
    REQUIRE_FALSE(none->has_value());
    write_all(peer.get(), wire.data() + split, wire.size() - split);
    auto got = link->receive();
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(to_vector(**got) == frame);
  }
  auto none = link->receive();
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
}

TEST_CASE("stream link: one byte at a time", "[net][frame_link]") {
  auto [link, peer] = make_pair();
  const auto frame = frame_of(300, 9);
  const auto wire = encode(frame);
  for (size_t i = 0; i + 1 < wire.size(); ++i) {
    write_all(peer.get(), &wire[i], 1);
    auto none = link->receive();
    REQUIRE(none);
    REQUIRE_FALSE(none->has_value());
  }
  write_all(peer.get(), &wire.back(), 1);
  auto got = link->receive();
  REQUIRE(got);
  REQUIRE(got->has_value());
  CHECK(to_vector(**got) == frame);
}

TEST_CASE("stream link: many frames in one read, and the largest frame", "[net][frame_link]") {
  auto [link, peer] = make_pair();
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint8_t> wire;
  for (int i = 0; i < 100; ++i) {
    frames.push_back(frame_of(static_cast<size_t>(14 + i * 13), static_cast<uint8_t>(i)));
    const auto one = encode(frames.back());
    wire.insert(wire.end(), one.begin(), one.end());
  }
  write_all(peer.get(), wire);
  for (const auto& frame : frames) {
    auto got = link->receive();
    REQUIRE(got);
    REQUIRE(got->has_value());
    CHECK(to_vector(**got) == frame);
  }
  auto none = link->receive();
  REQUIRE(none);
  CHECK_FALSE(none->has_value());

  // kMaxFrame exactly, written from a thread-free peer in pieces as the
  // socket buffer allows.
  const auto big = frame_of(kMaxFrame, 1);
  const auto big_wire = encode(big);
  size_t written = 0;
  std::optional<std::vector<uint8_t>> received;
  while (!received) {
    if (written < big_wire.size()) {
      const ssize_t n = ::send(peer.get(), big_wire.data() + written, big_wire.size() - written, MSG_DONTWAIT);
      if (n > 0) written += static_cast<size_t>(n);
    }
    auto got = link->receive();
    REQUIRE(got);
    if (got->has_value()) received = to_vector(**got);
  }
  CHECK(written == big_wire.size());
  CHECK(*received == big);
}

// Reads what the peer has without blocking and parses whole frames.
struct PeerReader {
  std::vector<uint8_t> buffer;
  std::vector<std::vector<uint8_t>> frames;
  void drain(int fd) {
    uint8_t chunk[16384];
    for (;;) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n <= 0) break;
      buffer.insert(buffer.end(), chunk, chunk + n);
    }
    for (;;) {
      if (buffer.size() < 4) return;
      const uint32_t len = (uint32_t{buffer[0]} << 24) | (uint32_t{buffer[1]} << 16) | (uint32_t{buffer[2]} << 8) | buffer[3];
      if (buffer.size() < 4 + len) return;
      frames.emplace_back(buffer.begin() + 4, buffer.begin() + 4 + len);
      buffer.erase(buffer.begin(), buffer.begin() + 4 + len);
    }
  }
};

TEST_CASE("stream link: a full socket buffer blocks, flush sends the rest", "[net][frame_link]") {
  auto [link, peer] = make_pair();
  const int small = 4096;
  REQUIRE(::setsockopt(link->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(::setsockopt(peer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);

  constexpr int kFrames = 40;
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < kFrames; ++i) frames.push_back(frame_of(9000 + static_cast<size_t>(i), static_cast<uint8_t>(i)));

  // Fill the socket until it takes no more.
  int next = 0;
  for (;;) {
    auto status = link->send(frames[static_cast<size_t>(next)]);
    REQUIRE(status);
    if (*status == FrameLink::SendStatus::kBlocked) break;
    ++next;
    REQUIRE(next < kFrames);
  }
  CHECK(next >= 1);
  // Part of the last frame taken waits in the link; blocked frames are not taken.
  const bool pending = link->pending_output();
  auto again = link->send(frames[static_cast<size_t>(next)]);
  REQUIRE(again);
  CHECK(*again == FrameLink::SendStatus::kBlocked);
  CHECK(link->pending_output() == pending);

  // The peer reads; the link flushes and takes the remaining frames.
  PeerReader reader;
  int rounds = 0;
  while (next < kFrames || link->pending_output()) {
    REQUIRE(++rounds < 100000);
    reader.drain(peer.get());
    REQUIRE(link->flush());
    if (next < kFrames) {
      auto status = link->send(frames[static_cast<size_t>(next)]);
      REQUIRE(status);
      if (*status == FrameLink::SendStatus::kSent) ++next;
    }
  }
  while (reader.frames.size() < frames.size()) {
    REQUIRE(++rounds < 200000);
    reader.drain(peer.get());
  }
  CHECK(reader.buffer.empty());
  REQUIRE(reader.frames.size() == frames.size());
  for (size_t i = 0; i < frames.size(); ++i) CHECK(reader.frames[i] == frames[i]);
}

TEST_CASE("stream link: a bad length from the peer is an error, and stays one", "[net][frame_link]") {
  const uint32_t bad = GENERATE(uint32_t{0}, uint32_t{kMaxFrame + 1}, uint32_t{0xffffffff});
  auto [link, peer] = make_pair();
  // A good frame first: it is handed out before the bad length is seen.
  const auto good = frame_of(20, 1);
  write_all(peer.get(), encode(good));
  const std::vector<uint8_t> header = {static_cast<uint8_t>(bad >> 24), static_cast<uint8_t>(bad >> 16),
                                       static_cast<uint8_t>(bad >> 8), static_cast<uint8_t>(bad)};
  write_all(peer.get(), header);
  auto first = link->receive();
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK(to_vector(**first) == good);
  auto error = link->receive();
  REQUIRE_FALSE(error);
  CHECK_THAT(error.error().message, Catch::Contains("frame length"));
  auto still = link->receive();
  REQUIRE_FALSE(still);
  CHECK(still.error().message == error.error().message);
}

TEST_CASE("stream link: the peer's close is an error after the whole frames", "[net][frame_link]") {
  SECTION("at a frame boundary") {
    auto [link, peer] = make_pair();
    write_all(peer.get(), encode(frame_of(10, 0)));
    peer.reset();
    auto frame = link->receive();
    REQUIRE(frame);
    REQUIRE(frame->has_value());
    auto closed = link->receive();
    REQUIRE_FALSE(closed);
    CHECK_THAT(closed.error().message, Catch::Contains("closed"));
  }
  SECTION("inside a frame") {
    auto [link, peer] = make_pair();
    auto wire = encode(frame_of(10, 0));
    wire.resize(7);
    write_all(peer.get(), wire);
    peer.reset();
    auto closed = link->receive();
    REQUIRE_FALSE(closed);
    CHECK_THAT(closed.error().message, Catch::Contains("closed"));
  }
  SECTION("sending to a closed peer is an error, not SIGPIPE") {
    auto [link, peer] = make_pair();
    peer.reset();
    auto sent = link->send(frame_of(10, 0));
    REQUIRE_FALSE(sent);
  }
}

TEST_CASE("frame links refuse empty and oversized frames", "[net][frame_link]") {
  const int type = GENERATE(SOCK_STREAM, SOCK_SEQPACKET);
  auto [link, peer] = make_pair(type);
  CHECK_FALSE(link->send({}));
  const auto big = frame_of(kMaxFrame + 1, 0);
  CHECK_FALSE(link->send(big));
}

TEST_CASE("links set O_NONBLOCK", "[net][frame_link]") {
  const int type = GENERATE(SOCK_STREAM, SOCK_SEQPACKET);
  auto [link, peer] = make_pair(type);
  CHECK((::fcntl(link->fd(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK_FALSE(make_stream_link(UniqueFd()));
  CHECK_FALSE(make_tap_link(UniqueFd()));
}

TEST_CASE("tap link: one read is one frame, one write is one frame", "[net][frame_link]") {
  auto [link, peer] = make_pair(SOCK_SEQPACKET);
  const auto a = frame_of(60, 1);
  const auto b = frame_of(1514, 2);
  write_all(peer.get(), a);
  write_all(peer.get(), b);
  auto got_a = link->receive();
  REQUIRE(got_a);
  REQUIRE(got_a->has_value());
  CHECK(to_vector(**got_a) == a);
  auto got_b = link->receive();
  REQUIRE(got_b);
  REQUIRE(got_b->has_value());
  CHECK(to_vector(**got_b) == b);
  auto none = link->receive();
  REQUIRE(none);
  CHECK_FALSE(none->has_value());

  auto sent = link->send(b);
  REQUIRE(sent);
  CHECK(*sent == FrameLink::SendStatus::kSent);
  CHECK_FALSE(link->pending_output());
  std::vector<uint8_t> out(kMaxFrame);
  const ssize_t n = ::read(peer.get(), out.data(), out.size());
  REQUIRE(n == static_cast<ssize_t>(b.size()));
  out.resize(static_cast<size_t>(n));
  CHECK(out == b);

  peer.reset();
  auto closed = link->receive();
  CHECK_FALSE(closed);
}

}  // namespace
}  // namespace husk::net
