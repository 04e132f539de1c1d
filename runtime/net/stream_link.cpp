// The stream FrameLink (frame_link.h): 32-bit big-endian length, then the
// frame, on a connected Unix stream socket (passt's tap protocol).
//
// Receiving: one buffer holds at least a whole frame with its length, so a
// frame split over any number of reads is put together in place, and one
// read may bring many frames. Sending: the link keeps at most one partly
// written frame; while it is there, send() takes nothing new.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/net/frame_link.h"

namespace husk::net {

namespace {

constexpr size_t kLengthSize = 4;
// Two whole frames: a read has room for many small frames at once, and the
// compaction before a read leaves room for at least one full frame.
constexpr size_t kReceiveBuffer = 2 * (kLengthSize + kMaxFrame);

Result<void> set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return fail_errno("fcntl F_GETFL");
  if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return fail_errno("fcntl F_SETFL O_NONBLOCK");
  return {};
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

class StreamLink final : public FrameLink {
 public:
  explicit StreamLink(UniqueFd socket) : socket_(std::move(socket)), rx_(kReceiveBuffer) {}

  int fd() const override { return socket_.get(); }
  bool pending_output() const override { return tx_sent_ < tx_.size(); }

  Result<SendStatus> send(std::span<const uint8_t> frame) override {
    if (frame.empty() || frame.size() > kMaxFrame) {
      return fail(fmt::format("frame of {} bytes: a frame is 1 to {} bytes", frame.size(), kMaxFrame));
    }
    HUSK_TRY(flush());
    if (pending_output()) return SendStatus::kBlocked;
    const auto n = static_cast<uint32_t>(frame.size());
    uint8_t header[kLengthSize] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16),
                                   static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
    iovec iov[2] = {{header, kLengthSize}, {const_cast<uint8_t*>(frame.data()), frame.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    ssize_t written;
    do {
      // MSG_NOSIGNAL: a peer gone away is an EPIPE error here, not a SIGPIPE.
      written = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (written < 0 && errno == EINTR);
    if (written < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return SendStatus::kBlocked;
      return fail_errno("send frame");
    }
    const size_t total = kLengthSize + frame.size();
    const auto done = static_cast<size_t>(written);
    if (done < total) {
      // Taken in part: the rest must follow before any other frame, or the
      // peer would read the next length from the middle of this frame.
      tx_.clear();
      if (done < kLengthSize) tx_.insert(tx_.end(), header + done, header + kLengthSize);
      const size_t frame_done = done > kLengthSize ? done - kLengthSize : 0;
      tx_.insert(tx_.end(), frame.begin() + static_cast<std::ptrdiff_t>(frame_done), frame.end());
      tx_sent_ = 0;
    }
    return SendStatus::kSent;
  }

  Result<void> flush() override {
    while (pending_output()) {
      const ssize_t written =
          ::send(socket_.get(), tx_.data() + tx_sent_, tx_.size() - tx_sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (written < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
        return fail_errno("send frame");
      }
      tx_sent_ += static_cast<size_t>(written);
    }
    tx_.clear();
    tx_sent_ = 0;
    return {};
  }

  Result<std::optional<std::span<const uint8_t>>> receive() override {
    if (broken_) return fail(*broken_);
    for (;;) {
      HUSK_TRY_ASSIGN(auto frame, next_buffered());
      if (frame) return frame;
      if (closed_) return fail(set_broken("closed by the peer"));
      // No whole frame buffered: move the partial one to the front (the
      // previous frame handed out is no longer valid), then read more.
      if (rx_begin_ > 0) {
        std::memmove(rx_.data(), rx_.data() + rx_begin_, rx_end_ - rx_begin_);
        rx_end_ -= rx_begin_;
        rx_begin_ = 0;
      }
      const ssize_t got = ::recv(socket_.get(), rx_.data() + rx_end_, rx_.size() - rx_end_, MSG_DONTWAIT);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        const Error error = fail_errno("receive frame").value();
        return fail(set_broken(error.message));
      }
      // End of stream: frames already whole are still handed out first.
      if (got == 0) closed_ = true;
      rx_end_ += static_cast<size_t>(got);
    }
  }

 private:
  // A whole frame from the buffer, or nullopt when the buffer has only part
  // of one. Checks the length before waiting for the frame it announces.
  Result<std::optional<std::span<const uint8_t>>> next_buffered() {
    const size_t available = rx_end_ - rx_begin_;
    if (available < kLengthSize) {
      if (closed_ && available > 0) return fail(set_broken("closed by the peer inside a frame's length"));
      return std::nullopt;
    }
    const uint32_t length = read_be32(rx_.data() + rx_begin_);
    // The peer's length is untrusted: 0 or more than kMaxFrame ends the link
    // (a bounded buffer of kReceiveBuffer can always hold what is accepted).
    if (length == 0 || length > kMaxFrame) {
      return fail(set_broken(fmt::format("frame length {} from the peer is not 1 to {}", length, kMaxFrame)));
    }
    if (available - kLengthSize < length) {
      if (closed_) return fail(set_broken("closed by the peer inside a frame"));
      return std::nullopt;
    }
    // Safe: length <= kMaxFrame and the bytes [begin + 4, begin + 4 + length)
    // were checked to be inside what was received.
    std::span<const uint8_t> frame(rx_.data() + rx_begin_ + kLengthSize, length);
    rx_begin_ += kLengthSize + length;
    return frame;
  }

  std::string set_broken(std::string why) {
    broken_ = std::move(why);
    return *broken_;
  }

  UniqueFd socket_;
  std::vector<uint8_t> rx_;
  size_t rx_begin_ = 0;  // the first byte not yet handed out
  size_t rx_end_ = 0;    // one past the last byte received
  bool closed_ = false;  // the peer's end of stream was read
  std::optional<std::string> broken_;  // once broken, every receive() says why
  std::vector<uint8_t> tx_;  // the unsent rest of one frame, with its length
  size_t tx_sent_ = 0;
};

}  // namespace

Result<std::unique_ptr<FrameLink>> make_stream_link(UniqueFd socket) {
  if (!socket) return fail("stream link: no socket");
  HUSK_TRY(set_nonblocking(socket.get()));
  return std::unique_ptr<FrameLink>(new StreamLink(std::move(socket)));
}

}  // namespace husk::net
