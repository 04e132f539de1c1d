#include "runtime/devices/virtio/vsock/vsock.h"

#include <linux/virtio_ids.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace husk::virtio {

Result<std::shared_ptr<Vsock>> Vsock::create(uint64_t guest_cid, std::string uds_path) {
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
  return std::shared_ptr<Vsock>(new Vsock(guest_cid, std::move(uds_path), std::move(fd)));
}

Vsock::Vsock(uint64_t guest_cid, std::string uds_path, UniqueFd listener)
    : guest_cid_(guest_cid), uds_path_(std::move(uds_path)), listener_(std::move(listener)) {}

Vsock::~Vsock() { ::unlink(uds_path_.c_str()); }

uint32_t Vsock::device_id() const { return VIRTIO_ID_VSOCK; }

void Vsock::read_config(uint64_t offset, std::span<uint8_t> data) const {
  const uint64_t cid = guest_cid_;  // struct virtio_vsock_config: le64 guest_cid
  read_config_bytes(std::span(reinterpret_cast<const uint8_t*>(&cid), sizeof(cid)), offset, data);
}

Result<void> Vsock::activate(DeviceContext context) {
  ctx_ = std::move(context);
  HUSK_TRY(ctx_.add_fd(listener_.get(), EPOLLIN, [this](uint32_t) { on_listener(); }));
  active_ = true;
  return {};
}

void Vsock::reset() {
  // The transport removes every fd it registered for us; the sockets close
  // with the connections.
  connections_.clear();
  control_.clear();
  held_rx_.reset();
  rx_starved_ = false;
  active_ = false;
  // The callbacks stay (reset can run from inside one); no queues: inactive.
  ctx_.queues = nullptr;
  ctx_.memory = nullptr;
}

void Vsock::process_queue(uint16_t queue) {
  if (!active_) return;
  if (queue == kTxQueue) {
    process_tx();
  } else if (queue == kRxQueue) {
    // New receive buffers: control packets first, then every socket that
    // waited for room gets watched again.
    rx_starved_ = false;
    pump_rx();
    update_all_interest();
  }
}

virtio_vsock_hdr Vsock::make_header(const VsockKey& key, uint16_t op, uint32_t flags) {
  virtio_vsock_hdr hdr{};
  hdr.src_cid = kHostCid;
  hdr.dst_cid = guest_cid_;
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

void Vsock::queue_control(const VsockKey& key, uint16_t op, uint32_t flags) {
  // Bounded: a guest that never gives receive buffers while provoking
  // replies loses the surplus, and only resets for connections that do not
  // exist are ever dropped.
  if (control_.size() >= kMaxPendingControl && (op == VIRTIO_VSOCK_OP_RST || op == VIRTIO_VSOCK_OP_CREDIT_UPDATE)) {
    return;
  }
  control_.push_back(Control{key, op, flags});
}

std::optional<DescriptorChain> Vsock::take_rx_chain() {
  if (held_rx_) {
    auto chain = std::move(held_rx_);
    held_rx_.reset();
    return chain;
  }
  auto chain = (*ctx_.queues)[kRxQueue].pop(*ctx_.memory);
  if (!chain) {
    ctx_.fail(chain.error().message);
    return std::nullopt;
  }
  if (!*chain) rx_starved_ = true;
  return std::move(*chain);
}

void Vsock::pump_rx() {
  bool used = false;
  while (active_ && !control_.empty()) {
    std::optional<DescriptorChain> chain = take_rx_chain();
    if (!chain) break;
    const Control c = control_.front();
    control_.pop_front();
    const virtio_vsock_hdr hdr = make_header(c.key, c.op, c.flags);
    ChainWriter writer(*ctx_.memory, *chain);
    uint32_t written = 0;
    if (writer.write_obj(hdr)) written = kPacketHeaderSize;
    if (auto ok = (*ctx_.queues)[kRxQueue].add_used(*ctx_.memory, chain->head, written); !ok) {
      ctx_.fail(ok.error().message);
      return;
    }
    used = true;
  }
  if (used) ctx_.signal_used(kRxQueue);
}

void Vsock::process_tx() {
  serve_queue(ctx_, kTxQueue, [this](const DescriptorChain& chain) -> uint32_t {
    if (!active_) return 0;
    ChainReader reader(*ctx_.memory, chain);
    auto hdr = reader.read_obj<virtio_vsock_hdr>();
    // A packet too short for its header, or claiming more payload than it
    // carries or than any packet may, is dropped; its connection (if the
    // header named one) is reset.
    if (hdr && hdr->len <= kMaxPacketPayload && hdr->len <= reader.remaining()) {
      handle_packet(*hdr, reader);
    } else if (hdr) {
      close_connection(VsockKey{hdr->dst_port, hdr->src_port}, true);
    }
    return 0;
  });
  pump_rx();
}

void Vsock::handle_packet(const virtio_vsock_hdr& hdr, ChainReader& payload) {
  const VsockKey key{hdr.dst_port, hdr.src_port};
  if (hdr.src_cid != guest_cid_ || hdr.dst_cid != kHostCid || hdr.type != VIRTIO_VSOCK_TYPE_STREAM) {
    if (hdr.op != VIRTIO_VSOCK_OP_RST) queue_control(key, VIRTIO_VSOCK_OP_RST);
    return;
  }
  if (hdr.op == VIRTIO_VSOCK_OP_REQUEST) {
    handle_request(hdr);
    return;
  }
  auto it = connections_.find(key);
  if (it == connections_.end()) {
    if (hdr.op != VIRTIO_VSOCK_OP_RST) queue_control(key, VIRTIO_VSOCK_OP_RST);
    return;
  }
  VsockConnection& conn = it->second;
  conn.peer_buf_alloc = hdr.buf_alloc;
  conn.peer_fwd_cnt = hdr.fwd_cnt;
  switch (hdr.op) {
    case VIRTIO_VSOCK_OP_RESPONSE: {
      if (conn.state != VsockState::kConnecting) {
        close_connection(key, true);
        return;
      }
      conn.state = VsockState::kEstablished;
      // The host client learns its connection is up before any data.
      conn.to_host.insert(0, fmt::format("OK {}\n", key.local_port));
      flush_to_host(conn);
      break;
    }
    case VIRTIO_VSOCK_OP_RW: {
      if (conn.state != VsockState::kEstablished || conn.guest_shut_send) {
        close_connection(key, true);
        return;
      }
      // The guest may not exceed the credit we gave it (5.10.6.3.1).
      if (uint64_t{conn.held()} + hdr.len > kConnectionBufAlloc) {
        spdlog::debug("vsock: guest port {} overran its credit; resetting", key.peer_port);
        close_connection(key, true);
        return;
      }
      auto iov = payload.take(hdr.len);
      if (!iov) {
        close_connection(key, true);
        return;
      }
      // Safe: the views were checked to lie in guest memory and their total
      // is hdr.len, bounded above.
      for (const iovec& v : *iov) conn.to_host.append(static_cast<const char*>(v.iov_base), v.iov_len);
      conn.rx_cnt += hdr.len;
      flush_to_host(conn);
      break;
    }
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      break;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      queue_control(key, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
      break;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      conn.guest_shut_rcv = conn.guest_shut_rcv || (hdr.flags & VIRTIO_VSOCK_SHUTDOWN_RCV);
      conn.guest_shut_send = conn.guest_shut_send || (hdr.flags & VIRTIO_VSOCK_SHUTDOWN_SEND);
      flush_to_host(conn);
      break;
    case VIRTIO_VSOCK_OP_RST:
      close_connection(key, false);
      return;
    default:
      close_connection(key, true);
      return;
  }
  if (connections_.count(key) != 0) update_interest(connections_.at(key));
}

void Vsock::handle_request(const virtio_vsock_hdr& hdr) {
  const VsockKey key{hdr.dst_port, hdr.src_port};
  if (connections_.count(key) != 0 || connections_.size() >= kMaxConnections) {
    queue_control(key, VIRTIO_VSOCK_OP_RST);
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = fmt::format("{}_{}", uds_path_, hdr.dst_port);
  std::memcpy(addr.sun_path, path.c_str(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    queue_control(key, VIRTIO_VSOCK_OP_RST);  // nothing listens on that port
    return;
  }
  VsockConnection conn;
  conn.key = key;
  conn.fd = std::move(fd);
  conn.state = VsockState::kEstablished;
  conn.peer_buf_alloc = hdr.buf_alloc;
  conn.peer_fwd_cnt = hdr.fwd_cnt;
  auto [it, inserted] = connections_.emplace(key, std::move(conn));
  if (!watch(it->second, EPOLLIN)) {
    connections_.erase(it);
    queue_control(key, VIRTIO_VSOCK_OP_RST);
    return;
  }
  queue_control(key, VIRTIO_VSOCK_OP_RESPONSE);
}

}  // namespace husk::virtio
