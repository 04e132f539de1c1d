// The tap FrameLink (frame_link.h): with IFF_TAP | IFF_NO_PI one read(2) of
// the tap fd is one whole frame and one write(2) is one whole frame
// (Documentation/networking/tuntap.rst), so nothing is ever buffered here.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "runtime/net/frame_link.h"

namespace husk::net {

namespace {

// A read of this size never truncates a frame the link accepts, and shows
// (by filling it) a larger one, which is dropped.
constexpr size_t kReadBuffer = kMaxFrame + 1;

class TapLink final : public FrameLink {
 public:
  explicit TapLink(UniqueFd tap) : tap_(std::move(tap)), rx_(kReadBuffer) {}

  int fd() const override { return tap_.get(); }
  bool pending_output() const override { return false; }
  Result<void> flush() override { return {}; }

  Result<SendStatus> send(std::span<const uint8_t> frame) override {
    if (frame.empty() || frame.size() > kMaxFrame) {
      return fail(fmt::format("frame of {} bytes: a frame is 1 to {} bytes", frame.size(), kMaxFrame));
    }
    for (;;) {
      const ssize_t written = ::write(tap_.get(), frame.data(), frame.size());
      if (written >= 0) return SendStatus::kSent;  // the tap takes a frame whole or not at all
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return SendStatus::kBlocked;
      // EIO: the interface is down; EINVAL: shorter than an Ethernet header.
      // A wire drops such frames too, and the guest chooses both (it can
      // send runts; the host may take the link down), so they are not the
      // device's failure.
      if (errno == EIO || errno == EINVAL) return SendStatus::kSent;
      return fail_errno("write frame to tap");
    }
  }

  Result<std::optional<std::span<const uint8_t>>> receive() override {
    for (;;) {
      const ssize_t got = ::read(tap_.get(), rx_.data(), rx_.size());
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
        return fail_errno("read frame from tap");
      }
      if (got == 0) return fail("tap closed");
      // A frame larger than kMaxFrame (a host MTU above 64 KiB) is dropped:
      // the guest could not take it whole.
      if (static_cast<size_t>(got) > kMaxFrame) continue;
      return std::span<const uint8_t>(rx_.data(), static_cast<size_t>(got));
    }
  }

 private:
  UniqueFd tap_;
  std::vector<uint8_t> rx_;
};

}  // namespace

Result<std::unique_ptr<FrameLink>> make_tap_link(UniqueFd tap) {
  if (!tap) return fail("tap link: no tap fd");
  const int flags = ::fcntl(tap.get(), F_GETFL);
  if (flags < 0) return fail_errno("fcntl F_GETFL");
  if (::fcntl(tap.get(), F_SETFL, flags | O_NONBLOCK) < 0) return fail_errno("fcntl F_SETFL O_NONBLOCK");
  return std::unique_ptr<FrameLink>(new TapLink(std::move(tap)));
}

}  // namespace husk::net
