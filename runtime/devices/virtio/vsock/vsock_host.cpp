// The host half of Vsock: the listening socket, the CONNECT handshake and
// its deadlines, and moving bytes between host Unix sockets and the guest's
// queues.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/devices/virtio/vsock/vsock.h"

namespace husk::virtio {

namespace {

constexpr size_t kMaxConnectLine = 32;  // "CONNECT 4294967295\n" fits
constexpr uint32_t kAcceptsPerEvent = 64;
// How often the handshake deadlines are checked while any is pending.
constexpr int64_t kTimerPeriodMs = 250;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool in_handshake(const VsockConnection& conn) { return conn.state != VsockState::kEstablished; }

}  // namespace

Result<void> Vsock::watch(VsockConnection& conn, uint32_t events) {
  const VsockKey key = conn.key;
  HUSK_TRY(ctx_.add_fd(conn.fd.get(), events, [this, key](uint32_t ev) { return on_host_event(key, ev); }));
  conn.epoll_events = events;
  conn.parked = false;
  return {};
}

uint32_t Vsock::allocate_local_port() {
  // Ports from 2^30 up, skipping any still in use after a wrap.
  for (;;) {
    const uint32_t port = state_.next_local_port++;
    if (state_.next_local_port == 0) state_.next_local_port = 1u << 30;
    auto it = connections_.lower_bound(VsockKey{port, 0});
    if (it == connections_.end() || it->first.local_port != port) return port;
  }
}

size_t Vsock::handshakes() const {
  size_t n = 0;
  for (const auto& [key, conn] : connections_) n += in_handshake(conn) ? 1 : 0;
  return n;
}

size_t Vsock::guest_connections() const {
  size_t n = 0;
  for (const auto& [key, conn] : connections_) n += conn.guest_initiated ? 1 : 0;
  return n;
}

void Vsock::arm_timer() {
  if (timer_armed_ || !timer_) return;
  itimerspec spec{};
  spec.it_value.tv_nsec = kTimerPeriodMs * 1000000;
  spec.it_interval = spec.it_value;
  if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) == 0) timer_armed_ = true;
}

Result<void> Vsock::on_timer() {
  uint64_t ticks = 0;
  [[maybe_unused]] ssize_t n = ::read(timer_.get(), &ticks, sizeof(ticks));
  const int64_t now = now_ns();
  std::vector<std::pair<VsockKey, bool>> expired;  // key, whether the guest knows of it
  for (const auto& [key, conn] : connections_) {
    if (in_handshake(conn) && now >= conn.handshake_deadline_ns) {
      expired.emplace_back(key, conn.state == VsockState::kConnecting);
    }
  }
  for (const auto& [key, guest_knows] : expired) {
    spdlog::debug("vsock: handshake for local port {} timed out", key.local_port);
    close_connection(key, guest_knows);
  }
  if (handshakes() == 0) {
    itimerspec off{};
    if (::timerfd_settime(timer_.get(), 0, &off, nullptr) == 0) timer_armed_ = false;
  }
  return pump_rx();
}

Result<void> Vsock::on_listener() {
  for (uint32_t i = 0; i < kAcceptsPerEvent; ++i) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return {};  // EAGAIN: no more clients waiting
    if (connections_.size() >= budgets_.max_connections || handshakes() >= budgets_.max_handshakes) {
      spdlog::debug("vsock: connection refused: {} connections, {} in their handshake", connections_.size(),
                    handshakes());
      continue;  // closed at once
    }
    VsockConnection conn;
    conn.key = VsockKey{allocate_local_port(), 0};
    conn.fd = std::move(fd);
    conn.state = VsockState::kAwaitingConnectLine;
    conn.handshake_deadline_ns = now_ns() + budgets_.connect_line_timeout_ms * 1000000;
    auto [it, inserted] = connections_.emplace(conn.key, std::move(conn));
    if (!watch(it->second, EPOLLIN)) connections_.erase(it);
    arm_timer();
  }
  return {};  // the rest next time round: the listener stays readable
}

Result<void> Vsock::on_host_event(VsockKey key, uint32_t events) {
  auto it = connections_.find(key);
  if (it == connections_.end()) return {};
  VsockConnection& conn = it->second;
  if (conn.state == VsockState::kAwaitingConnectLine) return read_connect_line(conn);
  // A hang-up is reported whatever events are watched, so a connection
  // that cannot make progress on it must end here, or the loop spins. After
  // EPOLLHUP nothing more can be sent to the host; only what it wrote before
  // hanging up (read until EOF below) is still owed to the guest.
  if (events & (EPOLLHUP | EPOLLERR)) {
    const bool stuck =
        conn.state == VsockState::kConnecting || (events & EPOLLERR) != 0 || conn.host_eof;
    if (stuck) {
      close_connection(key, true);
      return pump_rx();
    }
  }
  if (events & EPOLLOUT) {
    HUSK_TRY(flush_to_host(conn));
    it = connections_.find(key);
    if (it == connections_.end()) return {};
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) return send_host_data(it->second);
  return {};
}

Result<void> Vsock::read_connect_line(VsockConnection& conn) {
  // Byte by byte, so nothing after the newline is consumed here: that is
  // the client's first payload and goes to the guest later. At most
  // kMaxConnectLine + 1 bytes per event.
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(conn.fd.get(), &c, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {};
    if (n <= 0) {
      close_connection(conn.key, false);
      return {};
    }
    if (c != '\n') {
      conn.connect_line.push_back(c);
      if (conn.connect_line.size() > kMaxConnectLine) {
        close_connection(conn.key, false);  // conn is gone after this
        return {};
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
      return {};
    }
    // Re-key under the guest port now known; the fd gets a new handler.
    VsockConnection moved = std::move(conn);
    const VsockKey old_key = moved.key;
    ctx_.remove_fd(moved.fd.get());
    connections_.erase(old_key);
    moved.key = VsockKey{old_key.local_port, port};
    moved.state = VsockState::kConnecting;
    moved.handshake_deadline_ns = now_ns() + budgets_.guest_response_timeout_ms * 1000000;
    if (moved.in_ready_list) std::erase(ready_, old_key);
    moved.in_ready_list = false;
    auto [it, inserted] = connections_.emplace(moved.key, std::move(moved));
    // Nothing is read from the client until the guest accepts; a hang-up
    // still ends it.
    if (!inserted || !watch(it->second, 0)) {
      if (inserted) connections_.erase(it);
      return {};
    }
    owe(it->second, kPendingRequest);
    return pump_rx();
  }
}

Result<void> Vsock::send_host_data(VsockConnection& conn) {
  const VsockKey key = conn.key;
  // Control packets go first; data waits while any are still owed.
  HUSK_TRY(pump_rx());
  auto found = connections_.find(key);
  if (found == connections_.end()) return {};
  if (conn.state != VsockState::kEstablished || conn.host_eof || conn.guest_shut_rcv || control_pending()) {
    update_interest(conn);
    return {};
  }
  bool used = false;
  Queue& rx = (*ctx_.queues)[kRxQueue];
  for (uint32_t packets = 0; packets < kPacketsPerEvent && conn.peer_credit() > 0; ++packets) {
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, take_rx_chain());
    if (!chain) break;
    ChainWriter writer(*ctx_.memory, *chain);
    auto header_iov = writer.take(kPacketHeaderSize);
    const uint64_t room = writer.remaining();
    const uint32_t want = static_cast<uint32_t>(
        std::min<uint64_t>({room, conn.peer_credit(), kMaxPacketPayload}));
    auto payload_iov = writer.take(want);
    if (!header_iov || !payload_iov || want == 0) {
      // A receive buffer too small for a header and a byte is useless.
      HUSK_TRY(rx.add_used(*ctx_.memory, chain->head, 0));
      used = true;
      continue;
    }
    // Safe: readv writes at most `want` bytes into views checked to lie in
    // guest memory.
    const ssize_t n = ::readv(conn.fd.get(), payload_iov->data(), static_cast<int>(payload_iov->size()));
    if (n <= 0) {
      rx.undo_pop();  // the buffer stays the guest's for the next packet
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      if (n < 0) {
        close_connection(key, true);
        if (used) HUSK_TRY(ctx_.signal_used(kRxQueue));
        return pump_rx();
      }
      // End of file: the host will send no more (5.10.6.6).
      conn.host_eof = true;
      owe(conn, kPendingShutdown);
      break;
    }
    virtio_vsock_hdr hdr = make_header(key, VIRTIO_VSOCK_OP_RW, 0);
    hdr.len = static_cast<uint32_t>(n);
    // The header may be split over descriptors: copy it piece by piece.
    size_t done = 0;
    for (const iovec& v : *header_iov) {
      std::memcpy(v.iov_base, reinterpret_cast<const uint8_t*>(&hdr) + done, v.iov_len);
      done += v.iov_len;
    }
    conn.tx_cnt += static_cast<uint32_t>(n);
    HUSK_TRY(rx.add_used(*ctx_.memory, chain->head, static_cast<uint32_t>(kPacketHeaderSize + n)));
    used = true;
  }
  if (used) HUSK_TRY(ctx_.signal_used(kRxQueue));
  HUSK_TRY(pump_rx());
  // More data waits in the socket if the budget ran out: EPOLLIN is level
  // triggered, so the loop comes back after its other fds.
  if (auto it = connections_.find(key); it != connections_.end()) update_interest(it->second);
  return {};
}

Result<void> Vsock::flush_to_host(VsockConnection& conn) {
  const VsockKey key = conn.key;
  while (conn.pending_to_host() > 0) {
    const ssize_t n = ::send(conn.fd.get(), conn.to_host.data() + conn.to_host_offset,
                             conn.pending_to_host(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      close_connection(key, true);  // the host side is gone
      return pump_rx();
    }
    conn.to_host_offset += static_cast<size_t>(n);
  }
  // Bytes that came from the guest (not the "OK" line) count as forwarded.
  const uint32_t forwarded = conn.rx_cnt - static_cast<uint32_t>(std::min<size_t>(conn.pending_to_host(), conn.held()));
  release_held(forwarded - conn.fwd_cnt);
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
      return pump_rx();
    }
    ::shutdown(conn.fd.get(), SHUT_WR);
  }
  // Tell the guest about freed space once a good part of its window is back.
  if (conn.fwd_cnt - conn.fwd_cnt_sent >= kConnectionBufAlloc / 4) {
    owe(conn, kPendingCreditUpdate);
    HUSK_TRY(pump_rx());
  }
  if (auto it = connections_.find(key); it != connections_.end()) update_interest(it->second);
  return {};
}

void Vsock::update_interest(VsockConnection& conn) {
  uint32_t events = 0;
  if (conn.state == VsockState::kAwaitingConnectLine) events |= EPOLLIN;
  if (conn.state == VsockState::kEstablished && !conn.host_eof && !conn.guest_shut_rcv &&
      conn.peer_credit() > 0 && !rx_starved_) {
    events |= EPOLLIN;
  }
  if (conn.pending_to_host() > 0) events |= EPOLLOUT;
  if (conn.state == VsockState::kEstablished && events == 0) {
    // Nothing to watch: leave the loop, so a hang-up cannot spin it. The
    // guest's next credit or receive buffers bring the socket back.
    if (!conn.parked) {
      ctx_.remove_fd(conn.fd.get());
      conn.parked = true;
      conn.epoll_events = 0;
    }
    return;
  }
  if (conn.parked) {
    if (!watch(conn, events)) close_connection(conn.key, true);
    return;
  }
  if (events == conn.epoll_events) return;
  if (ctx_.modify_fd(conn.fd.get(), events)) conn.epoll_events = events;
}

void Vsock::release_held(uint32_t bytes) { held_total_ -= std::min<uint64_t>(held_total_, bytes); }

void Vsock::update_all_interest() {
  std::vector<VsockKey> keys;
  keys.reserve(connections_.size());
  for (const auto& [key, conn] : connections_) keys.push_back(key);
  // update_interest may close a connection, so look each up again.
  for (const VsockKey& key : keys) {
    if (auto it = connections_.find(key); it != connections_.end()) update_interest(it->second);
  }
}

void Vsock::close_connection(VsockKey key, bool send_rst) {
  auto it = connections_.find(key);
  if (it != connections_.end()) {
    if (!it->second.parked) ctx_.remove_fd(it->second.fd.get());
    // A guest that reopens the same ports again and again must not grow
    // the list of connections that owe packets.
    if (it->second.in_ready_list) std::erase(ready_, key);
    release_held(it->second.held());
    connections_.erase(it);
  }
  if (send_rst) owe_rst(key);
}

}  // namespace husk::virtio
