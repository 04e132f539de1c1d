#include "runtime/agent/frame_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace husk::agent {

namespace {
// The largest frame, and the buffer: two of them, so that after compaction
// a partial frame always has room to complete.
constexpr size_t kMaxFrame = proto::kLengthSize + proto::kMaxFrameBody;
constexpr size_t kBufferSize = 2 * kMaxFrame;
}  // namespace

void FrameStream::mark_broken(const std::string& why) {
  if (broken_) return;
  broken_ = true;
  broken_why_ = why;
}

Unexpected FrameStream::unusable() const {
  return Unexpected(Error{EPIPE, "agent: connection unusable after an earlier error (" + broken_why_ + ")"});
}

Result<void> FrameStream::write_all(std::span<const uint8_t> bytes, Deadline deadline) {
  if (broken_) return unusable();
  size_t done = 0;
  // A guest that takes nothing for frame_timeout() has stopped reading,
  // however long the whole write may take.
  auto progress = Deadline::Clock::now();
  while (done < bytes.size()) {
    // MSG_NOSIGNAL: a guest that hangs up is an error value, not SIGPIPE.
    const ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      progress = Deadline::Clock::now();
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return fail_errno("agent: send");
    const Deadline stall = Deadline::at(progress + frame_timeout_);
    const int rc = poll_until(fd_.get(), POLLOUT, deadline.earlier(stall));
    if (rc < 0) return fail_errno("agent: poll");
    if (rc == 0) {
      // Part of a frame may be out: the stream is out of step for good.
      const std::string what =
          stall.expired() && stall.time() <= deadline.time()
              ? fmt::format("sending to the guest stalled: it took nothing for {} ms ({} of {} bytes sent; the "
                            "guest does not read)",
                            frame_timeout_.count(), done, bytes.size())
              : fmt::format("sending to the guest timed out ({} of {} bytes sent: the guest does not read)", done,
                            bytes.size());
      if (done != 0) mark_broken(what);
      return Unexpected(Error{ETIMEDOUT, "agent: " + what});
    }
  }
  return {};
}

Result<bool> FrameStream::fill(Deadline deadline) {
  const int rc = poll_until(fd_.get(), POLLIN, deadline);
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

bool FrameStream::buffered() const {
  if (broken_) return true;  // next() fails at once
  proto::FrameView frame;
  return proto::peek_frame(std::span(in_.data() + begin_, end_ - begin_), frame) != proto::Status::kNeedMore;
}

Result<std::optional<proto::FrameView>> FrameStream::next(Deadline deadline) {
  if (broken_) return unusable();
  // The frame handed out last time is no longer in use: when nothing
  // follows it, start again at the front.
  if (begin_ == end_) begin_ = end_ = 0;
  for (;;) {
    proto::FrameView frame;
    const proto::Status s = proto::peek_frame(std::span(in_.data() + begin_, end_ - begin_), frame);
    if (s == proto::Status::kOk) {
      begin_ += frame.size;  // peek_frame checked frame.size <= end_ - begin_
      // What follows (if anything) is the start of the next frame; it came now.
      partial_since_.reset();
      if (begin_ != end_) partial_since_ = Deadline::Clock::now();
      return frame;
    }
    if (s != proto::Status::kNeedMore) {
      std::string what = std::string("agent: ") + proto::status_name(s);
      if (s == proto::Status::kUnknownType) what += " " + std::to_string(frame.type);
      mark_broken(what);
      return Unexpected(Error{EPROTO, what});
    }
    // A frame that has begun must end by its own deadline, even when the
    // caller would wait longer (or forever).
    Deadline wait = deadline;
    if (partial_since_) wait = wait.earlier(Deadline::at(*partial_since_ + frame_timeout_));
    HUSK_TRY_ASSIGN(const bool got, fill(wait));
    if (got) {
      if (!partial_since_ && end_ != begin_) partial_since_ = Deadline::Clock::now();
      continue;
    }
    if (partial_since_ && Deadline::Clock::now() >= *partial_since_ + frame_timeout_) {
      const std::string what = fmt::format(
          "agent: a frame from the guest was not complete {} ms after its first byte ({} bytes came; "
          "the guest stalls or drips it)",
          frame_timeout_.count(), end_ - begin_);
      mark_broken(what);
      return Unexpected(Error{ETIMEDOUT, what});
    }
    return std::nullopt;
  }
}

}  // namespace husk::agent
