// FrameLink: the VMM-side end of a network backend, one Ethernet frame at a
// time, non-blocking, for the virtio-net device's thread. Two kinds:
//
// - a stream link (passt, and qemu's `-netdev stream`): a connected Unix
//   stream socket on which each frame is preceded by its length as a 32-bit
//   big-endian integer. This is passt's tap protocol in "passt mode"
//   (passt/tap.c, tap_handler_passt) and qemu's net/stream.c.
// - a tap link: a tap fd (IFF_TAP | IFF_NO_PI), where one read is one frame
//   and one write is one frame (Documentation/networking/tuntap.rst).
//
// Neither link looks inside a frame: filtering is the device's business.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::net {

// The largest Ethernet frame accepted either way: 64 KiB covers passt's
// largest (65520 MTU plus the header) and a tap's with GSO off.
inline constexpr size_t kMaxFrame = 65536;

class FrameLink {
 public:
  virtual ~FrameLink() = default;

  // For the caller's epoll: readable when receive() may have a frame,
  // writable when flush() can make progress.
  [[nodiscard]] virtual int fd() const = 0;

  enum class SendStatus { kSent, kBlocked };

  // Sends one whole frame or takes nothing: kBlocked means the link cannot
  // take it now (retry after fd() is writable; pending_output() tells whether
  // to wait for EPOLLOUT). A frame larger than kMaxFrame, or an empty one, is
  // an error (the caller checks the guest's lengths first).
  [[nodiscard]] virtual Result<SendStatus> send(std::span<const uint8_t> frame) = 0;

  // True while part of an accepted frame is still waiting for the fd.
  [[nodiscard]] virtual bool pending_output() const = 0;

  // Writes what is pending as far as the fd takes it.
  [[nodiscard]] virtual Result<void> flush() = 0;

  // The next whole frame, valid until the next call on this link;
  // std::nullopt when none is complete yet (the fd said EAGAIN). The peer's
  // end is an error ("closed").
  [[nodiscard]] virtual Result<std::optional<std::span<const uint8_t>>> receive() = 0;
};

// The stream protocol on a connected Unix stream socket. A length of 0 or
// more than kMaxFrame from the peer is an error: the peer's bytes are
// untrusted, and such a stream cannot be resynchronised. A partial frame
// stays buffered across calls. Sets O_NONBLOCK.
[[nodiscard]] Result<std::unique_ptr<FrameLink>> make_stream_link(UniqueFd socket);

// A tap fd (IFF_TAP | IFF_NO_PI). Sets O_NONBLOCK.
[[nodiscard]] Result<std::unique_ptr<FrameLink>> make_tap_link(UniqueFd tap);

}  // namespace husk::net
