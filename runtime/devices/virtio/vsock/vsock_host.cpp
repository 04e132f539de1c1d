// The host half of Vsock: the listening socket, the CONNECT handshake and
// moving bytes between host Unix sockets and the guest's queues.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/devices/virtio/vsock/vsock.h"

namespace husk::virtio {

namespace {
constexpr size_t kMaxConnectLine = 32;  // "CONNECT 4294967295\n" fits
}  // namespace

Result<void> Vsock::watch(VsockConnection& conn, uint32_t events) {
  const VsockKey key = conn.key;
  HUSK_TRY(ctx_.add_fd(conn.fd.get(), events, [this, key](uint32_t ev) { on_host_event(key, ev); }));
  conn.epoll_events = events;
  return {};
}

uint32_t Vsock::allocate_local_port() {
  // Ports from 2^30 up, skipping any still in use after a wrap.
  for (;;) {
    const uint32_t port = next_local_port_++;
    if (next_local_port_ == 0) next_local_port_ = 1u << 30;
    auto it = connections_.lower_bound(VsockKey{port, 0});
    if (it == connections_.end() || it->first.local_port != port) return port;
  }
}

void Vsock::on_listener() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;  // EAGAIN: no more clients waiting
    if (connections_.size() >= kMaxConnections) continue;  // closed at once
    VsockConnection conn;
    conn.key = VsockKey{allocate_local_port(), 0};
    conn.fd = std::move(fd);
    conn.state = VsockState::kAwaitingConnectLine;
    auto [it, inserted] = connections_.emplace(conn.key, std::move(conn));
    if (!watch(it->second, EPOLLIN)) connections_.erase(it);
  }
}

void Vsock::on_host_event(VsockKey key, uint32_t events) {
  auto it = connections_.find(key);
  if (it == connections_.end()) return;
  VsockConnection& conn = it->second;
  if (conn.state == VsockState::kAwaitingConnectLine) {
    read_connect_line(conn);
    return;
  }
  // A hang-up is reported whatever events are watched, so a connection
  // that cannot make progress on it must end here, or the loop spins. After
  // EPOLLHUP nothing more can be sent to the host; only what it wrote before
  // hanging up (read until EOF below) is still owed to the guest.
  if (events & (EPOLLHUP | EPOLLERR)) {
    const bool stuck =
        conn.state == VsockState::kConnecting || (events & EPOLLERR) != 0 || conn.host_eof;
    if (stuck) {
      close_connection(key, true);
      pump_rx();
      return;
    }
  }
  if (events & EPOLLOUT) {
    flush_to_host(conn);
    if (connections_.count(key) == 0) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) send_host_data(conn);
}

void Vsock::read_connect_line(VsockConnection& conn) {
  // Byte by byte, so nothing after the newline is consumed here: that is
  // the client's first payload and goes to the guest later.
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(conn.fd.get(), &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      close_connection(conn.key, false);
      return;
    }
    if (c != '\n') {
      conn.connect_line.push_back(c);
      if (conn.connect_line.size() > kMaxConnectLine) {
        close_connection(conn.key, false);  // conn is gone after this
        return;
      }
      continue;
    }
    uint32_t port = 0;
    const std::string& line = conn.connect_line;
    const std::string prefix = "CONNECT ";
    const char* end = line.data() + line.size();
    auto [ptr, ec] = line.rfind(prefix, 0) == 0
                         ? std::from_chars(line.data() + prefix.size(), end, port)
                         : std::from_chars(end, end, port);
    if (line.rfind(prefix, 0) != 0 || ec != std::errc() || ptr != end) {
      spdlog::debug("vsock: bad handshake line '{}'", line);
      close_connection(conn.key, false);
      return;
    }
    // Re-key under the guest port now known; the fd gets a new handler.
    VsockConnection moved = std::move(conn);
    const VsockKey old_key = moved.key;
    ctx_.remove_fd(moved.fd.get());
    connections_.erase(old_key);
    moved.key = VsockKey{old_key.local_port, port};
    moved.state = VsockState::kConnecting;
    auto [it, inserted] = connections_.emplace(moved.key, std::move(moved));
    // Nothing is read from the client until the guest accepts.
    if (!inserted || !watch(it->second, 0)) {
      if (inserted) connections_.erase(it);
      return;
    }
    queue_control(it->first, VIRTIO_VSOCK_OP_REQUEST);
    pump_rx();
    return;
  }
}

void Vsock::send_host_data(VsockConnection& conn) {
  const VsockKey key = conn.key;
  if (conn.state != VsockState::kEstablished || conn.host_eof || conn.guest_shut_rcv) {
    update_interest(conn);
    return;
  }
  bool used = false;
  while (conn.peer_credit() > 0 && control_.empty()) {
    std::optional<DescriptorChain> chain = take_rx_chain();
    if (!chain) break;
    ChainWriter writer(*ctx_.memory, *chain);
    auto header_iov = writer.take(kPacketHeaderSize);
    const uint64_t room = writer.remaining();
    const uint32_t want = static_cast<uint32_t>(
        std::min<uint64_t>({room, conn.peer_credit(), kMaxPacketPayload}));
    auto payload_iov = writer.take(want);
    if (!header_iov || !payload_iov || want == 0) {
      // A receive buffer too small for a header and a byte is useless.
      (void)(*ctx_.queues)[kRxQueue].add_used(*ctx_.memory, chain->head, 0);
      used = true;
      continue;
    }
    // Safe: readv writes at most `want` bytes into views checked to lie in
    // guest memory.
    const ssize_t n = ::readv(conn.fd.get(), payload_iov->data(), static_cast<int>(payload_iov->size()));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      held_rx_ = std::move(chain);
      break;
    }
    if (n <= 0) {
      held_rx_ = std::move(chain);
      if (n < 0) {
        close_connection(key, true);
        if (used) ctx_.signal_used(kRxQueue);
        pump_rx();
        return;
      }
      // End of file: the host will send no more (5.10.6.6).
      conn.host_eof = true;
      queue_control(key, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_SEND);
      break;
    }
    virtio_vsock_hdr hdr = make_header(key, VIRTIO_VSOCK_OP_RW, 0);
    hdr.len = static_cast<uint32_t>(n);
    std::memcpy((*header_iov)[0].iov_base, &hdr, std::min(sizeof(hdr), (*header_iov)[0].iov_len));
    if (header_iov->size() > 1) {
      // A header split over descriptors: copy it piece by piece.
      size_t done = 0;
      for (const iovec& v : *header_iov) {
        std::memcpy(v.iov_base, reinterpret_cast<const uint8_t*>(&hdr) + done, v.iov_len);
        done += v.iov_len;
      }
    }
    conn.tx_cnt += static_cast<uint32_t>(n);
    if (auto ok = (*ctx_.queues)[kRxQueue].add_used(*ctx_.memory, chain->head,
                                                     static_cast<uint32_t>(kPacketHeaderSize + n));
        !ok) {
      ctx_.fail(ok.error().message);
      return;
    }
    used = true;
  }
  if (used) ctx_.signal_used(kRxQueue);
  pump_rx();
  if (connections_.count(key) != 0) update_interest(connections_.at(key));
}

void Vsock::flush_to_host(VsockConnection& conn) {
  const VsockKey key = conn.key;
  while (conn.pending_to_host() > 0) {
    const ssize_t n = ::send(conn.fd.get(), conn.to_host.data() + conn.to_host_offset,
                             conn.pending_to_host(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      close_connection(key, true);  // the host side is gone
      pump_rx();
      return;
    }
    conn.to_host_offset += static_cast<size_t>(n);
  }
  // Bytes that came from the guest (not the "OK" line) count as forwarded.
  const uint32_t forwarded = conn.rx_cnt - static_cast<uint32_t>(std::min<size_t>(conn.pending_to_host(), conn.held()));
  conn.fwd_cnt = forwarded;
  if (conn.pending_to_host() == 0) {
    conn.to_host.clear();
    conn.to_host_offset = 0;
  } else if (conn.to_host_offset > kConnectionBufAlloc) {
    conn.to_host.erase(0, conn.to_host_offset);
    conn.to_host_offset = 0;
  }
  if (conn.pending_to_host() == 0 && conn.guest_shut_send) {
    if (conn.guest_shut_rcv) {
      // Both directions are done: close and tell the guest (5.10.6.6).
      close_connection(key, true);
      pump_rx();
      return;
    }
    ::shutdown(conn.fd.get(), SHUT_WR);
  }
  // Tell the guest about freed space once a good part of its window is back.
  if (conn.fwd_cnt - conn.fwd_cnt_sent >= kConnectionBufAlloc / 4) {
    queue_control(key, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    pump_rx();
  }
  if (connections_.count(key) != 0) update_interest(connections_.at(key));
}

void Vsock::update_interest(VsockConnection& conn) {
  uint32_t events = 0;
  if (conn.state == VsockState::kAwaitingConnectLine) events |= EPOLLIN;
  if (conn.state == VsockState::kEstablished && !conn.host_eof && !conn.guest_shut_rcv &&
      conn.peer_credit() > 0 && !rx_starved_) {
    events |= EPOLLIN;
  }
  if (conn.pending_to_host() > 0) events |= EPOLLOUT;
  if (events == conn.epoll_events) return;
  if (ctx_.modify_fd(conn.fd.get(), events)) conn.epoll_events = events;
}

void Vsock::update_all_interest() {
  for (auto& [key, conn] : connections_) update_interest(conn);
}

void Vsock::close_connection(VsockKey key, bool send_rst) {
  auto it = connections_.find(key);
  if (it != connections_.end()) {
    ctx_.remove_fd(it->second.fd.get());
    connections_.erase(it);
  }
  if (send_rst) queue_control(key, VIRTIO_VSOCK_OP_RST);
}

}  // namespace husk::virtio
