// FrameStream: the host end of an agent connection as a sequence of
// protocol frames (guest-agent/protocol/wire.h). Blocking with deadlines
// through poll(2); no threads.
//
// Everything read here comes from the guest and is untrusted: frames are
// located with proto::peek_frame, which bounds every length, and a stream
// that sends an oversized, malformed or unknown frame is marked broken and
// fails every later call.
//
// Every wait has a deadline (runtime/common/deadline.h) that covers the
// whole write or the whole frame, not each read; and a frame whose first
// byte has come must be complete within frame_timeout() whatever the
// caller's deadline, so a guest cannot hold a call open by dripping bytes.
// A stream that timed out in the middle of a frame (either way) is broken:
// it cannot be brought back in step.
//
// Received bytes go into one buffer allocated (and zeroed) once per stream,
// read in large pieces and handed out in place: a frame's payload is never
// copied here, and the buffer is compacted only when its tail runs short.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "runtime/common/deadline.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::agent {

class FrameStream {
 public:
  // How long one frame may take from its first byte to its last. The
  // largest frame is about 1 MiB, which the slowest vsock measured (the
  // nested test host, 45 MiB/s) carries in under 30 ms: 10 s only ends a
  // guest that sends a frame and then stalls or drips it.
  static constexpr std::chrono::milliseconds kDefaultFrameTimeout{10'000};

  FrameStream() = default;
  explicit FrameStream(UniqueFd fd) : fd_(std::move(fd)) {}

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool broken() const { return broken_; }
  // Fails every later call with `why` (a request that timed out: the
  // guest is not asked again).
  void mark_broken(const std::string& why);

  void set_frame_timeout(std::chrono::milliseconds t) { frame_timeout_ = t; }
  [[nodiscard]] std::chrono::milliseconds frame_timeout() const { return frame_timeout_; }

  // Writes all of `bytes` by `deadline` (waiting whenever the socket is
  // full), and fails sooner when the guest takes nothing for
  // frame_timeout(); ETIMEDOUT, and the stream broken, when it cannot.
  [[nodiscard]] Result<void> write_all(std::span<const uint8_t> bytes, Deadline deadline);
  [[nodiscard]] Result<void> write_all(std::span<const uint8_t> bytes, int timeout_ms) {
    return write_all(bytes, Deadline::after_ms(timeout_ms));
  }

  template <typename M>
  [[nodiscard]] Result<void> send(uint32_t id, const M& msg, Deadline deadline) {
    std::vector<uint8_t> buf;
    if (proto::append_frame(buf, id, msg) != proto::Status::kOk) {
      return fail("agent: message too large for one frame");
    }
    return write_all(buf, deadline);
  }
  template <typename M>
  [[nodiscard]] Result<void> send(uint32_t id, const M& msg, int timeout_ms) {
    return send(id, msg, Deadline::after_ms(timeout_ms));
  }

  // The next frame, or nullopt when `deadline` passes before a whole frame
  // has come (a deadline already past: only what is buffered or readable
  // now). ETIMEDOUT (and the stream broken) when a frame that has begun
  // is not complete within frame_timeout(). The view's payload stays valid
  // until the next call. End of stream is an error.
  [[nodiscard]] Result<std::optional<proto::FrameView>> next(Deadline deadline);
  // The same with a timeout for the whole frame (0: do not wait, -1: forever).
  [[nodiscard]] Result<std::optional<proto::FrameView>> next(int timeout_ms) {
    return next(Deadline::after_ms(timeout_ms));
  }

  // True when next() answers without reading: a whole frame is buffered
  // (or a bad one, which next() reports). A caller that polls other
  // descriptors beside fd() takes these first, since poll(2) cannot see them.
  [[nodiscard]] bool buffered() const;
  // By when the frame now being received must be complete (its first byte
  // plus frame_timeout()); never while no partial frame is buffered. A
  // caller's own poll of fd() ends by this, then next() reports the timeout.
  [[nodiscard]] Deadline partial_deadline() const {
    return partial_since_ ? Deadline::at(*partial_since_ + frame_timeout_) : Deadline::never();
  }

 private:
  Result<bool> fill(Deadline deadline);
  Unexpected unusable() const;

  UniqueFd fd_;
  std::vector<uint8_t> in_;  // empty until the first read, then kBufferSize
  size_t begin_ = 0;         // first byte of in_ not handed out yet
  size_t end_ = 0;           // end of the bytes received
  bool broken_ = false;
  std::string broken_why_;
  std::chrono::milliseconds frame_timeout_ = kDefaultFrameTimeout;
  // When the first byte of the frame now being received came; nullopt
  // while no partial frame is buffered.
  std::optional<Deadline::Clock::time_point> partial_since_;
};

}  // namespace husk::agent
