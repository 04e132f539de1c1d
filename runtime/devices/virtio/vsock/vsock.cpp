#include "runtime/devices/virtio/vsock/vsock.h"

#include <linux/virtio_ids.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <bit>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace husk::virtio {

Result<std::shared_ptr<Vsock>> Vsock::create(uint64_t guest_cid, std::string uds_path, Budgets budgets) {
  if (guest_cid <= kHostCid || guest_cid > 0xffffffffull) {
    return fail(fmt::format("vsock guest CID {} must be between 3 and 2^32-1", guest_cid));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // "_<port>" is appended for guest-initiated connections: keep room.
  if (uds_path.empty() || uds_path.size() + 12 >= sizeof(addr.sun_path)) {
    return fail(fmt::format("vsock socket path '{}' is empty or longer than {} bytes", uds_path,
                            sizeof(addr.sun_path) - 13));
  }
  std::memcpy(addr.sun_path, uds_path.c_str(), uds_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("vsock: socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("vsock: bind " + uds_path);
  }
  if (::listen(fd.get(), 128) != 0) return fail_errno("vsock: listen on " + uds_path);
  return std::shared_ptr<Vsock>(new Vsock(guest_cid, std::move(uds_path), std::move(fd), budgets));
}

Vsock::Vsock(uint64_t guest_cid, std::string uds_path, UniqueFd listener, Budgets budgets)
    : uds_path_(std::move(uds_path)), listener_(std::move(listener)), budgets_(budgets) {
  state_.guest_cid = guest_cid;
}

Vsock::~Vsock() { ::unlink(uds_path_.c_str()); }

uint32_t Vsock::device_id() const { return VIRTIO_ID_VSOCK; }

void Vsock::read_config(uint64_t offset, std::span<uint8_t> data) const {
  const uint64_t cid = state_.guest_cid;  // struct virtio_vsock_config: le64 guest_cid
  read_config_bytes(std::span(reinterpret_cast<const uint8_t*>(&cid), sizeof(cid)), offset, data);
}

Result<void> Vsock::activate(DeviceContext context) {
  ctx_ = std::move(context);
  timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) return fail_errno("vsock: timerfd_create");
  HUSK_TRY(ctx_.add_fd(timer_.get(), EPOLLIN, [this](uint32_t) { return on_timer(); }));
  return ctx_.add_fd(listener_.get(), EPOLLIN, [this](uint32_t) { return on_listener(); });
}

Result<void> Vsock::restored() {
  HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, (*ctx_.queues)[kEventQueue].pop(*ctx_.memory));
  if (!chain) {
    // The driver fills its event queue at probe; a guest that took the
    // buffers away only misses the news (its connections time out).
    spdlog::warn("vsock: no event buffer for the transport reset of a restored VM");
    return {};
  }
  const virtio_vsock_event event{VIRTIO_VSOCK_EVENT_TRANSPORT_RESET};
  ChainWriter writer(*ctx_.memory, *chain);
  uint32_t written = 0;
  if (writer.write_obj(event)) written = sizeof(event);
  Queue& events = (*ctx_.queues)[kEventQueue];
  HUSK_TRY(events.add_used(*ctx_.memory, chain->head, written));
  // The guest refills the buffer once it has reset its sockets: that
  // notification (asked for here) lets host clients in again.
  HUSK_TRY_ASSIGN(const uint16_t mark, events.avail_index(*ctx_.memory));
  HUSK_TRY(events.notify_after(*ctx_.memory, mark));
  reset_mark_ = mark;
  ctx_.remove_fd(listener_.get());
  reset_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!reset_timer_) return fail_errno("vsock: timerfd_create");
  const itimerspec in{{0, 0}, {kResetAckTimeoutMs / 1000, (kResetAckTimeoutMs % 1000) * 1'000'000}};
  if (::timerfd_settime(reset_timer_.get(), 0, &in, nullptr) < 0) return fail_errno("vsock: timerfd_settime");
  HUSK_TRY(ctx_.add_fd(reset_timer_.get(), EPOLLIN, [this](uint32_t) {
    spdlog::warn("vsock: the guest did not handle the transport reset within {} ms; taking host clients anyway",
                 kResetAckTimeoutMs);
    return reset_acknowledged();
  }));
  return ctx_.signal_used(kEventQueue);
}

Result<void> Vsock::reset_acknowledged() {
  if (!reset_mark_) return {};
  reset_mark_.reset();
  ctx_.remove_fd(reset_timer_.get());
  reset_timer_.reset();
  return ctx_.add_fd(listener_.get(), EPOLLIN, [this](uint32_t) { return on_listener(); });
}

Result<void> Vsock::restore_state(const State& state) {
  if (state.guest_cid != state_.guest_cid) {
    return fail(fmt::format("vsock: the snapshot's guest CID is {}, this device's {}", state.guest_cid, state_.guest_cid));
  }
  state_ = state;
  return {};
}

void Vsock::reset() {
  // The transport removes every fd it registered for us; the sockets close
  // with the connections.
  connections_.clear();
  ready_.clear();
  orphan_rst_.clear();
  rx_starved_ = false;
  held_total_ = 0;
  timer_.reset();
  timer_armed_ = false;
  reset_mark_.reset();
  reset_timer_.reset();
  ctx_ = {};
}

size_t Vsock::pending_control() const {
  size_t n = orphan_rst_.size();
  for (const auto& [key, conn] : connections_) n += static_cast<size_t>(std::popcount(conn.pending_ops));
  return n;
}

Result<Served> Vsock::process_queue(uint16_t queue) {
  if (queue == kTxQueue) return process_tx();
  if (queue == kRxQueue) {
    // New receive buffers: control packets first, then every socket that
    // waited for room gets watched again.
    rx_starved_ = false;
    HUSK_TRY(pump_rx());
    update_all_interest();
  }
  if (queue == kEventQueue && reset_mark_) {
    HUSK_TRY_ASSIGN(const uint16_t avail, (*ctx_.queues)[kEventQueue].avail_index(*ctx_.memory));
    if (avail != *reset_mark_) HUSK_TRY(reset_acknowledged());
  }
  return Served::kDone;
}

virtio_vsock_hdr Vsock::make_header(const VsockKey& key, uint16_t op, uint32_t flags) {
  virtio_vsock_hdr hdr{};
  hdr.src_cid = kHostCid;
  hdr.dst_cid = state_.guest_cid;
  hdr.src_port = key.local_port;
  hdr.dst_port = key.peer_port;
  hdr.type = VIRTIO_VSOCK_TYPE_STREAM;
  hdr.op = op;
  hdr.flags = flags;
  hdr.buf_alloc = kConnectionBufAlloc;
  if (auto it = connections_.find(key); it != connections_.end()) {
    hdr.fwd_cnt = it->second.fwd_cnt;
    it->second.fwd_cnt_sent = it->second.fwd_cnt;
  }
  return hdr;
}

void Vsock::owe(VsockConnection& conn, VsockPendingOp op) {
  conn.pending_ops |= op;
  if (!conn.in_ready_list) {
    conn.in_ready_list = true;
    ready_.push_back(conn.key);
  }
}

void Vsock::owe_rst(const VsockKey& key) {
  // Bounded: a guest that never gives receive buffers while provoking
  // resets loses the surplus, which only concerns connections that are
  // already gone on the host side.
  if (orphan_rst_.size() < kMaxPendingRst) orphan_rst_.push_back(key);
}

Result<std::optional<DescriptorChain>> Vsock::take_rx_chain() {
  HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, (*ctx_.queues)[kRxQueue].pop(*ctx_.memory));
  if (!chain) rx_starved_ = true;
  return chain;
}

Result<void> Vsock::put_control(const DescriptorChain& chain, const VsockKey& key, uint16_t op, uint32_t flags) {
  const virtio_vsock_hdr hdr = make_header(key, op, flags);
  ChainWriter writer(*ctx_.memory, chain);
  uint32_t written = 0;
  if (writer.write_obj(hdr)) written = kPacketHeaderSize;
  return (*ctx_.queues)[kRxQueue].add_used(*ctx_.memory, chain.head, written);
}

Result<void> Vsock::pump_rx() {
  bool used = false;
  while (control_pending()) {
    uint16_t op = 0;
    uint32_t flags = 0;
    VsockKey key{};
    VsockConnection* conn = nullptr;
    if (!orphan_rst_.empty()) {
      key = orphan_rst_.front();
      op = VIRTIO_VSOCK_OP_RST;
    } else {
      key = ready_.front();
      auto it = connections_.find(key);
      if (it == connections_.end() || it->second.pending_ops == 0) {
        if (it != connections_.end()) it->second.in_ready_list = false;
        ready_.pop_front();
        continue;
      }
      conn = &it->second;
      // In protocol order: the handshake, credit, and the shutdown last.
      const uint8_t p = conn->pending_ops;
      const VsockPendingOp next = (p & kPendingRequest)        ? kPendingRequest
                                  : (p & kPendingResponse)     ? kPendingResponse
                                  : (p & kPendingCreditUpdate) ? kPendingCreditUpdate
                                                               : kPendingShutdown;
      op = next == kPendingRequest        ? VIRTIO_VSOCK_OP_REQUEST
           : next == kPendingResponse     ? VIRTIO_VSOCK_OP_RESPONSE
           : next == kPendingCreditUpdate ? VIRTIO_VSOCK_OP_CREDIT_UPDATE
                                          : VIRTIO_VSOCK_OP_SHUTDOWN;
      if (next == kPendingShutdown) flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
      HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, take_rx_chain());
      if (!chain) break;
      HUSK_TRY(put_control(*chain, key, op, flags));
      used = true;
      conn->pending_ops &= static_cast<uint8_t>(~next);
      continue;
    }
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, take_rx_chain());
    if (!chain) break;
    HUSK_TRY(put_control(*chain, key, op, flags));
    orphan_rst_.pop_front();
    used = true;
  }
  if (used) HUSK_TRY(ctx_.signal_used(kRxQueue));
  return {};
}

Result<Served> Vsock::process_tx() {
  Queue& tx = (*ctx_.queues)[kTxQueue];
  Served served = Served::kMore;
  uint32_t used = 0;
  for (; used < kQueueBudget; ++used) {
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, tx.pop(*ctx_.memory));
    if (!chain) {
      served = Served::kDone;
      break;
    }
    ChainReader reader(*ctx_.memory, *chain);
    auto hdr = reader.read_obj<virtio_vsock_hdr>();
    // A packet too short for its header, or claiming more payload than it
    // carries or than any packet may, is dropped; its connection (if the
    // header named one) is reset.
    if (hdr && hdr->len <= kMaxPacketPayload && hdr->len <= reader.remaining()) {
      HUSK_TRY(handle_packet(*hdr, reader));
    } else if (hdr) {
      close_connection(VsockKey{hdr->dst_port, hdr->src_port}, true);
    }
    HUSK_TRY(tx.add_used(*ctx_.memory, chain->head, 0));
  }
  if (used > 0) HUSK_TRY(ctx_.signal_used(kTxQueue));
  HUSK_TRY(pump_rx());
  return served;
}

Result<void> Vsock::handle_packet(const virtio_vsock_hdr& hdr, ChainReader& payload) {
  const VsockKey key{hdr.dst_port, hdr.src_port};
  if (hdr.src_cid != state_.guest_cid || hdr.dst_cid != kHostCid || hdr.type != VIRTIO_VSOCK_TYPE_STREAM) {
    if (hdr.op != VIRTIO_VSOCK_OP_RST) owe_rst(key);
    return {};
  }
  if (hdr.op == VIRTIO_VSOCK_OP_REQUEST) {
    handle_request(hdr);
    return {};
  }
  auto it = connections_.find(key);
  if (it == connections_.end()) {
    if (hdr.op != VIRTIO_VSOCK_OP_RST) owe_rst(key);
    return {};
  }
  VsockConnection& conn = it->second;
  conn.peer_buf_alloc = hdr.buf_alloc;
  conn.peer_fwd_cnt = hdr.fwd_cnt;
  switch (hdr.op) {
    case VIRTIO_VSOCK_OP_RESPONSE: {
      if (conn.state != VsockState::kConnecting) {
        close_connection(key, true);
        return {};
      }
      conn.state = VsockState::kEstablished;
      // The host client learns its connection is up before any data.
      conn.to_host.insert(0, fmt::format("OK {}\n", key.local_port));
      HUSK_TRY(flush_to_host(conn));
      break;
    }
    case VIRTIO_VSOCK_OP_RW: {
      if (conn.state != VsockState::kEstablished || conn.guest_shut_send) {
        close_connection(key, true);
        return {};
      }
      // The guest may not exceed the credit we gave it (5.10.6.3.1).
      if (uint64_t{conn.held()} + hdr.len > kConnectionBufAlloc) {
        spdlog::debug("vsock: guest port {} overran its credit; resetting", key.peer_port);
        close_connection(key, true);
        return {};
      }
      auto iov = payload.take(hdr.len);
      if (!iov) {
        close_connection(key, true);
        return {};
      }
      // Safe: the views were checked to lie in guest memory and their total
      // is hdr.len, bounded above.
      for (const iovec& v : *iov) conn.to_host.append(static_cast<const char*>(v.iov_base), v.iov_len);
      conn.rx_cnt += hdr.len;
      held_total_ += hdr.len;
      HUSK_TRY(flush_to_host(conn));
      // Past the device-wide budget, a connection whose host socket does not
      // take its bytes is reset: it, not the queue every connection (the
      // agent's too) shares, pays for the peer that does not read.
      if (auto found = connections_.find(key); found != connections_.end() &&
                                               held_total_ > budgets_.max_held_bytes &&
                                               found->second.held() > 0) {
        spdlog::debug("vsock: guest port {}: {} bytes held for host sockets in all; resetting", key.peer_port,
                      held_total_);
        close_connection(key, true);
        return {};
      }
      break;
    }
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      break;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      owe(conn, kPendingCreditUpdate);
      break;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      conn.guest_shut_rcv = conn.guest_shut_rcv || (hdr.flags & VIRTIO_VSOCK_SHUTDOWN_RCV);
      conn.guest_shut_send = conn.guest_shut_send || (hdr.flags & VIRTIO_VSOCK_SHUTDOWN_SEND);
      HUSK_TRY(flush_to_host(conn));
      break;
    case VIRTIO_VSOCK_OP_RST:
      close_connection(key, false);
      return {};
    default:
      close_connection(key, true);
      return {};
  }
  if (auto found = connections_.find(key); found != connections_.end()) update_interest(found->second);
  return {};
}

void Vsock::handle_request(const virtio_vsock_hdr& hdr) {
  const VsockKey key{hdr.dst_port, hdr.src_port};
  if (connections_.count(key) != 0 || connections_.size() >= budgets_.max_connections ||
      guest_connections() >= budgets_.max_guest_connections) {
    owe_rst(key);
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = fmt::format("{}_{}", uds_path_, hdr.dst_port);
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    owe_rst(key);  // nothing listens on that port
    return;
  }
  VsockConnection conn;
  conn.key = key;
  conn.fd = std::move(fd);
  conn.state = VsockState::kEstablished;
  conn.guest_initiated = true;
  conn.peer_buf_alloc = hdr.buf_alloc;
  conn.peer_fwd_cnt = hdr.fwd_cnt;
  auto [it, inserted] = connections_.emplace(key, std::move(conn));
  if (!watch(it->second, EPOLLIN)) {
    connections_.erase(it);
    owe_rst(key);
    return;
  }
  owe(it->second, kPendingResponse);
}

}  // namespace husk::virtio
