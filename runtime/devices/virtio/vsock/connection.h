// VsockConnection: one stream between a host Unix socket and a guest vsock
// port, with the credit accounting of virtio 1.2, 5.10.6.3 ("Flow
// control"): the guest may have at most buf_alloc bytes in flight towards
// the host, husk sends at most the guest's free space towards the guest.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/common/unique_fd.h"
#include "runtime/devices/virtio/vsock/packet.h"

namespace husk::virtio {

enum class VsockState {
  kAwaitingConnectLine,  // host client accepted, "CONNECT <port>\n" not read yet
  kConnecting,           // REQUEST sent to the guest, no RESPONSE yet
  kEstablished,
};

struct VsockKey {
  uint32_t local_port;  // the host side's port
  uint32_t peer_port;   // the guest side's port
  auto operator<=>(const VsockKey&) const = default;
};

// Control packets a connection owes the guest, at most one of each: so the
// packets waiting for receive buffers are bounded by the connection count.
enum VsockPendingOp : uint8_t {
  kPendingRequest = 1 << 0,
  kPendingResponse = 1 << 1,
  kPendingCreditUpdate = 1 << 2,
  kPendingShutdown = 1 << 3,
};

struct VsockConnection {
  VsockKey key{};
  UniqueFd fd;
  VsockState state = VsockState::kAwaitingConnectLine;
  bool guest_initiated = false;
  std::string connect_line;  // bytes of the CONNECT line read so far
  int64_t handshake_deadline_ns = 0;  // CLOCK_MONOTONIC; while not established
  uint32_t epoll_events = 0;  // what the event loop watches now
  // Not in the event loop at all: nothing to watch, and a hang-up (which
  // epoll reports whatever is watched) could not be acted on either.
  bool parked = false;
  uint8_t pending_ops = 0;     // VsockPendingOp bits
  bool in_ready_list = false;  // queued in Vsock::ready_

  // Guest -> host. Bytes taken from the guest but not yet written to the
  // host socket live in to_host (at most kConnectionBufAlloc of them).
  std::string to_host;
  size_t to_host_offset = 0;
  uint32_t rx_cnt = 0;   // guest bytes received
  uint32_t fwd_cnt = 0;  // guest bytes written to the host socket
  uint32_t fwd_cnt_sent = 0;  // the fwd_cnt the guest last heard of

  // Host -> guest.
  uint32_t tx_cnt = 0;  // bytes sent to the guest
  uint32_t peer_buf_alloc = 0;
  uint32_t peer_fwd_cnt = 0;

  bool host_eof = false;          // the host socket returned end of file
  bool guest_shut_send = false;   // the guest will send no more
  bool guest_shut_rcv = false;    // the guest will read no more

  // How many bytes the guest can still take (0 when it is full or lied).
  [[nodiscard]] uint32_t peer_credit() const {
    const uint32_t in_flight = tx_cnt - peer_fwd_cnt;
    return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
  }
  [[nodiscard]] size_t pending_to_host() const { return to_host.size() - to_host_offset; }
  // Guest bytes held by husk: what the guest's credit accounting counts.
  [[nodiscard]] uint32_t held() const { return rx_cnt - fwd_cnt; }
};

}  // namespace husk::virtio
