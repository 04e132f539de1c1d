#include "runtime/agent/frame_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace husk::agent {

namespace {
// The largest frame, and the buffer: two of them, so that after compaction
// a partial frame always has room to complete.
constexpr size_t kMaxFrame = proto::kLengthSize + proto::kMaxFrameBody;
constexpr size_t kBufferSize = 2 * kMaxFrame;
}  // namespace

Result<void> FrameStream::write_all(std::span<const uint8_t> bytes, int timeout_ms) {
  if (broken_) return fail("agent: connection unusable after a protocol error");
  size_t done = 0;
  while (done < bytes.size()) {
    // MSG_NOSIGNAL: a guest that hangs up is an error value, not SIGPIPE.
    const ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return fail_errno("agent: send");
    pollfd p{fd_.get(), POLLOUT, 0};
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) return fail_errno("agent: poll");
    if (rc == 0) return Unexpected(Error{ETIMEDOUT, "agent: send timed out"});
  }
  return {};
}

Result<bool> FrameStream::fill(int timeout_ms) {
  pollfd p{fd_.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return fail_errno("agent: poll");
  if (rc == 0) return false;
  if (in_.empty()) in_.resize(kBufferSize);
  if (in_.size() - end_ < kMaxFrame) {
    // Move the unfinished frame (under kMaxFrame bytes, or peek_frame would
    // have refused it) to the front; the room left is then over kMaxFrame.
    std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  ssize_t n;
  do {
    n = ::read(fd_.get(), in_.data() + end_, in_.size() - end_);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return true;
  if (n < 0) return fail_errno("agent: read");
  if (n == 0) return Unexpected(Error{ECONNRESET, "agent: connection closed"});
  end_ += static_cast<size_t>(n);  // n <= in_.size() - end_
  return true;
}

Result<std::optional<proto::FrameView>> FrameStream::next(int timeout_ms) {
  if (broken_) return fail("agent: connection unusable after a protocol error");
  // The frame handed out last time is no longer in use: when nothing
  // follows it, start again at the front.
  if (begin_ == end_) begin_ = end_ = 0;
  for (;;) {
    proto::FrameView frame;
    const proto::Status s = proto::peek_frame(std::span(in_.data() + begin_, end_ - begin_), frame);
    if (s == proto::Status::kOk) {
      begin_ += frame.size;  // peek_frame checked frame.size <= end_ - begin_
      return frame;
    }
    if (s != proto::Status::kNeedMore) {
      broken_ = true;
      std::string what = std::string("agent: ") + proto::status_name(s);
      if (s == proto::Status::kUnknownType) what += " " + std::to_string(frame.type);
      return Unexpected(Error{EPROTO, what});
    }
    // timeout_ms bounds each wait for progress, not the whole frame.
    HUSK_TRY_ASSIGN(const bool got, fill(timeout_ms));
    if (!got) return std::nullopt;
  }
}

}  // namespace husk::agent
