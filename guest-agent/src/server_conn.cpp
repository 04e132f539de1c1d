// Host connections in the agent's loop (connection.h): accepting them (the
// host only, kMaxConnections at most), reading and framing what each sends,
// its send queue, and dropping it, which kills its jobs and aborts its
// transfers and touches no other connection's.
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "guest-agent/src/log.h"
#include "guest-agent/src/peer.h"
#include "guest-agent/src/server.h"

namespace husk::guest {

namespace proto = agent::proto;

void Server::accept_conn() {
  sockaddr_vm peer{};
  socklen_t peer_len = sizeof(peer);
  UniqueFd fd(::accept4(listen_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  // Only the host: a peer inside the guest (vsock loopback) is closed
  // before it can take a connection slot or read a byte (peer.h).
  if (opts_.vsock && !is_host_peer(peer, peer_len)) {
    if (log_refusal(refused_peers_)) {
      HUSK_LOG("refused a connection from CID %u port %u: only the host (CID %u) may talk to the agent "
               "(%llu refused so far)",
               peer.svm_cid, peer.svm_port, unsigned(VMADDR_CID_HOST),
               static_cast<unsigned long long>(refused_peers_ + 1));
    }
    ++refused_peers_;
    return;  // fd closes here: the peer sees its connection reset
  }
  const auto open_conns = static_cast<size_t>(
      std::count_if(conns_.begin(), conns_.end(), [](const auto& kv) { return kv.second.open(); }));
  if (open_conns >= kMaxConnections) {
    // Each connection costs buffers and its jobs; a host that opens more
    // (an exec storm, a leak) is told at once, not queued behind them.
    if (log_refusal(refused_full_)) {
      HUSK_LOG("refused a host connection: %zu are open, the most served at once (%llu refused so far)",
               open_conns, static_cast<unsigned long long>(refused_full_ + 1));
    }
    ++refused_full_;
    return;
  }
  if (opts_.vsock) {
    // The receive buffer the host may fill before the guest's credit
    // update (buf_alloc, 256 KiB by default): larger, stdin and uploads
    // wait less on round trips. The maximum first, the size within it.
    const uint64_t size = kVsockBuffer;
    for (int opt : {SO_VM_SOCKETS_BUFFER_MAX_SIZE, SO_VM_SOCKETS_BUFFER_SIZE}) {
      if (::setsockopt(fd.get(), AF_VSOCK, opt, &size, sizeof(size)) != 0) {
        HUSK_LOG("vsock buffer size: %s", std::strerror(errno));  // only slower
      }
    }
  }
  const uint64_t serial = next_serial_++;
  epoll_event ev{EPOLLIN, {.u64 = key(serial, kConn)}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    HUSK_LOG("epoll_ctl conn: %s", std::strerror(errno));
    return;
  }
  Connection& c = conns_[serial];
  c.serial = serial;
  c.fd = std::move(fd);
  HUSK_LOG("host connection %llu opened (%zu open)", static_cast<unsigned long long>(serial), open_conns + 1);
}

void Server::drop_conn(Connection& c, const char* why) {
  if (!c.open()) return;
  HUSK_LOG("host connection %llu closed: %s", static_cast<unsigned long long>(c.serial), why);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
  c.fd.reset();
  c.in_len = 0;
  c.out.clear();
  c.out_off = 0;
  c.output_off = c.output_end = 0;
  // A job without its host has nobody to report to: kill it.
  orphan_jobs(c);
  c.exec_args.clear();
  abort_transfers(c);
}

void Server::erase_dropped() {
  std::erase_if(conns_, [](const auto& kv) { return !kv.second.open(); });
}

Connection* Server::conn_of(const Job& job) {
  if (job.orphan) return nullptr;
  auto it = conns_.find(job.conn);
  return it != conns_.end() && it->second.open() ? &it->second : nullptr;
}

void Server::on_conn_event(uint64_t serial, uint32_t events) {
  auto it = conns_.find(serial);
  if (it == conns_.end() || !it->second.open()) return;  // dropped earlier in this round
  Connection& c = it->second;
  if (events & EPOLLOUT) flush_out(c);
  if (!c.open() || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c.close_after_flush) return;
  const size_t room = c.receive_room();
  const ssize_t n = ::read(c.fd.get(), c.in.data() + c.in_len, room);
  if (n == 0) return drop_conn(c, "end of stream");
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) drop_conn(c, std::strerror(errno));
    return;
  }
  c.in_len += static_cast<size_t>(n);  // n <= room = c.in.size() - c.in_len
  size_t off = 0;
  while (!c.close_after_flush) {
    proto::FrameView frame;
    const proto::Status s = proto::peek_frame(std::span(c.in.data() + off, c.in_len - off), frame);
    if (s == proto::Status::kNeedMore) break;
    if (s == proto::Status::kTooLarge || s == proto::Status::kMalformed) {
      // The stream cannot be resynchronised: say why, then hang up.
      send_error(c, 0, EPROTO, std::string("bad frame: ") + proto::status_name(s));
      c.close_after_flush = true;
      break;
    }
    if (s == proto::Status::kUnknownType) {
      send_error(c, frame.id, EPROTO, "unknown message type " + std::to_string(frame.type));
    } else {
      handle_frame(c, frame);
      if (!c.open()) return;  // dropped while handling: in_len is 0
    }
    off += frame.size;
  }
  std::memmove(c.in.data(), c.in.data() + off, c.in_len - off);
  c.in_len -= off;
}

void Server::send_error(Connection& c, uint32_t id, int err, const std::string& message) {
  if (!c.open()) return;
  // Errors are sent even after close_after_flush was set by the same frame.
  if (proto::append_frame(c.out, id, proto::Error{err, message}) != proto::Status::kOk) {
    HUSK_LOG("error message too large to send");
  }
}

void Server::send_output_frame(Connection& c, size_t size) {
  if (!c.open() || c.close_after_flush) return;  // nobody to send to, as send() does
  c.output_off = 0;
  c.output_end = size;
  flush_out(c);
}

// Sends from c's queue until it is empty or the socket is full.
void Server::flush_out(Connection& c) {
  const bool was_queued = c.queued() != 0;
  auto send_some = [this, &c](const uint8_t* data, size_t size) -> ssize_t {
    const ssize_t n = ::send(c.fd.get(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) drop_conn(c, std::strerror(errno));
    return n;
  };
  while (c.open() && c.output_off < c.output_end) {
    const ssize_t n = send_some(c.output_buf.data() + c.output_off, c.output_end - c.output_off);
    if (n < 0) break;
    c.output_off += static_cast<size_t>(n);  // n <= output_end - output_off
  }
  while (c.open() && c.output_off == c.output_end && c.out_off < c.out.size()) {
    const ssize_t n = send_some(c.out.data() + c.out_off, c.out.size() - c.out_off);
    if (n < 0) break;
    c.out_off += static_cast<size_t>(n);
  }
  if (!c.open()) return;  // dropped: the queue is gone, the jobs orphaned
  if (c.output_off == c.output_end) c.output_off = c.output_end = 0;
  if (c.queued() == 0 && c.close_after_flush) return drop_conn(c, "protocol error");
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  } else if (c.out_off > (1u << 20)) {
    c.out.erase(c.out.begin(), c.out.begin() + static_cast<ptrdiff_t>(c.out_off));
    c.out_off = 0;
  }
  update_conn_interest(c);
  // The queue ran empty: this connection's jobs' pipes may be read again.
  if (was_queued && c.queued() == 0) {
    for (auto& [serial, job] : jobs_) {
      if (job->conn == c.serial) update_interest(*job);
    }
  }
}

void Server::update_conn_interest(Connection& c) {
  const bool want = c.queued() != 0;
  if (!c.open() || want == c.wants_out) return;
  epoll_event ev{EPOLLIN | (want ? EPOLLOUT : 0u), {.u64 = key(c.serial, kConn)}};
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
  c.wants_out = want;
}

}  // namespace husk::guest
