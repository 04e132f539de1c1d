// FrameStream: the host end of an agent connection as a sequence of
// protocol frames (guest-agent/protocol/wire.h). Blocking with timeouts
// through poll(2); no threads.
//
// Everything read here comes from the guest and is untrusted: frames are
// located with proto::peek_frame, which bounds every length, and a stream
// that sends an oversized, malformed or unknown frame is marked broken and
// fails every later call.
//
// Received bytes go into one buffer allocated (and zeroed) once per stream,
// read in large pieces and handed out in place: a frame's payload is never
// copied here, and the buffer is compacted only when its tail runs short.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::agent {

class FrameStream {
 public:
  FrameStream() = default;
  explicit FrameStream(UniqueFd fd) : fd_(std::move(fd)) {}

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool broken() const { return broken_; }

  // Writes all of `bytes`, waiting up to timeout_ms (-1: forever) whenever
  // the socket is full.
  [[nodiscard]] Result<void> write_all(std::span<const uint8_t> bytes, int timeout_ms);

  template <typename M>
  [[nodiscard]] Result<void> send(uint32_t id, const M& msg, int timeout_ms) {
    std::vector<uint8_t> buf;
    if (proto::append_frame(buf, id, msg) != proto::Status::kOk) {
      return fail("agent: message too large for one frame");
    }
    return write_all(buf, timeout_ms);
  }

  // The next frame, or nullopt when a wait for more bytes saw nothing for
  // timeout_ms (0: do not wait, -1: forever). The view's payload stays valid
  // until the next call. End of stream is an error.
  [[nodiscard]] Result<std::optional<proto::FrameView>> next(int timeout_ms);

 private:
  Result<bool> fill(int timeout_ms);

  UniqueFd fd_;
  std::vector<uint8_t> in_;  // empty until the first read, then kBufferSize
  size_t begin_ = 0;         // first byte of in_ not handed out yet
  size_t end_ = 0;           // end of the bytes received
  bool broken_ = false;
};

}  // namespace husk::agent
