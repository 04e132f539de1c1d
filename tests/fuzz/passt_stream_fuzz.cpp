// libFuzzer target for the stream FrameLink (runtime/net/frame_link.h): the
// bytes passt (or anything at the other end of the VM's network socket)
// sends, in pieces of fuzzed sizes, over a real socketpair. passt runs as
// nobody next to the internet, so its stream is untrusted.
//
// Input: byte 0 picks how the rest is cut into writes (0: one write; else
// a pattern of 1 to 97-byte pieces); the rest is the peer's stream.
// Checked, besides no crash, leak or UB:
// - the link hands out exactly the frames a reference parser finds, in
//   order, each 1 to kMaxFrame bytes, and none before its last byte came;
// - it fails where the reference parser meets a length of 0 or more than
//   kMaxFrame, and, once the peer closes, with "closed" at the latest;
// - every frame sent back through send()/flush() reaches the peer encoded
//   exactly (length, then the bytes), across kBlocked and partial writes.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <span>
#include <vector>

#include "runtime/net/frame_link.h"

namespace {

using husk::net::FrameLink;
using husk::net::kMaxFrame;
using Bytes = std::vector<uint8_t>;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The reference: frames in `stream`, and whether it ends with a bad length.
struct Model {
  std::deque<Bytes> frames;
  bool bad_length = false;
};

Model parse(std::span<const uint8_t> stream) {
  Model m;
  size_t at = 0;
  while (stream.size() - at >= 4) {
    const uint32_t length = be32(stream.data() + at);
    if (length == 0 || length > kMaxFrame) {
      m.bad_length = true;
      break;
    }
    if (stream.size() - at - 4 < length) break;
    m.frames.emplace_back(stream.begin() + at + 4, stream.begin() + at + 4 + length);
    at += 4 + length;
  }
  return m;
}

// The peer's view of what the link sent back.
struct Echo {
  Bytes expected;  // encoded frames not yet read back
  void drain(int fd) {
    uint8_t buffer[8192];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) return;
      if (static_cast<size_t>(n) > expected.size()) std::abort();
      for (ssize_t i = 0; i < n; ++i) {
        if (buffer[i] != expected[static_cast<size_t>(i)]) std::abort();
      }
      expected.erase(expected.begin(), expected.begin() + n);
    }
  }
};

// Sends the frame back; on kBlocked the peer reads and the link flushes.
void echo(FrameLink& link, std::span<const uint8_t> frame, Echo& peer, int peer_fd) {
  for (int tries = 0;; ++tries) {
    if (tries > 10000) std::abort();  // the peer reads everything: must make progress
    auto status = link.send(frame);
    if (!status) std::abort();
    if (*status == FrameLink::SendStatus::kSent) break;
    peer.drain(peer_fd);
    if (!link.flush()) std::abort();
  }
  const auto n = static_cast<uint32_t>(frame.size());
  const uint8_t header[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
                             static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  peer.expected.insert(peer.expected.end(), header, header + 4);
  peer.expected.insert(peer.expected.end(), frame.begin(), frame.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t pattern = data[0];
  const std::span<const uint8_t> stream(data + 1, size - 1);
  Model model = parse(stream);

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 0;
  husk::UniqueFd peer(pair[1]);
  auto made = husk::net::make_stream_link(husk::UniqueFd(pair[0]));
  if (!made) std::abort();
  FrameLink& link = **made;
  Echo echoed;
  // Small buffers (the kernel's minimum is about 4 KiB), so echoes of a few
  // frames already meet kBlocked and partial writes.
  const int small = 1;
  (void)::setsockopt(link.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  (void)::setsockopt(peer.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

  size_t written = 0;  // stream bytes the peer has written
  size_t complete = 0; // stream bytes that make up the frames handed out so far
  bool failed = false;
  // Pulls frames until none is complete or the link fails.
  auto pull = [&](bool closed) {
    while (!failed) {
      auto got = link.receive();
      if (!got) {
        // Only where the reference fails, or after the peer closed.
        if (!closed && !(model.bad_length && model.frames.empty())) std::abort();
        failed = true;
        return;
      }
      if (!got->has_value()) return;
      const auto frame = **got;
      if (model.frames.empty() || frame.empty() || frame.size() > kMaxFrame) std::abort();
      if (!std::equal(frame.begin(), frame.end(), model.frames.front().begin(), model.frames.front().end())) {
        std::abort();
      }
      complete += 4 + frame.size();
      if (complete > written) std::abort();  // handed out before its last byte came
      model.frames.pop_front();
      echo(link, frame, echoed, peer.get());
    }
  };

  for (size_t piece = 0; written < stream.size() && !failed; ++piece) {
    size_t n = stream.size() - written;
    if (pattern != 0) n = std::min(n, size_t{1} + (pattern * (piece + 1) * 37u) % 97u);
    const size_t end = written + n;
    while (written < end && !failed) {
      const ssize_t w = ::send(peer.get(), stream.data() + written, end - written, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) written += static_cast<size_t>(w);
      else if (w < 0 && errno != EAGAIN) std::abort();
      pull(false);
      echoed.drain(peer.get());
    }
  }
  if (!failed) {
    // All written: everything whole has come out, and a bad length is seen.
    pull(false);
    if (!model.frames.empty()) std::abort();
    if (model.bad_length && !failed) std::abort();
  }
  if (!failed) {
    if (!link.flush()) std::abort();
    while (link.pending_output()) {
      echoed.drain(peer.get());
      if (!link.flush()) std::abort();
    }
    echoed.drain(peer.get());
    if (!echoed.expected.empty()) std::abort();
    ::shutdown(peer.get(), SHUT_WR);
    pull(true);
    if (!failed) std::abort();  // the peer's end is an error
  }
  // Once failed, it stays failed.
  if (link.receive()) std::abort();
  return 0;
}
