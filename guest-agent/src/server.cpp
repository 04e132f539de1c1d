// The agent's event loop and its host connection: framing, the Hello
// handshake, dispatch of requests, and the small requests (clock, hostname,
// reseed, network, shutdown). Jobs are in server_jobs.cpp, files in
// server_files.cpp.
#include "guest-agent/src/server.h"

#include <linux/vm_sockets.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "guest-agent/protocol/network.h"
#include "guest-agent/src/log.h"
#include "guest-agent/src/network.h"
#include "guest-agent/src/peer.h"
#include "guest-agent/src/sys.h"

namespace husk::guest {

namespace proto = agent::proto;

namespace {

// Reads and drops until the peer hangs up, fails, or timeout_ms pass.
void wait_for_hangup(int fd, int timeout_ms) {
  timespec start{};
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (spent >= timeout_ms) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_ms - spent)) <= 0) return;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

}  // namespace

Server::~Server() {
  // Leave nothing behind: kill every job's tree, reap the leaders, remove
  // the cgroups. Only reached when the agent stops (tests, shutdown).
  for (auto& [serial, job] : jobs_) {
    kill_tree(*job);
    if (!job->leader_done && job->pid > 0) ::waitpid(job->pid, nullptr, 0);
    job->cgroup.kill();
    for (int i = 0; i < 100 && !job->cgroup.remove(); ++i) ::usleep(10000);
  }
  for (Cgroup& cg : dead_cgroups_) cg.remove();
  abort_transfers();
  if (!opts_.vsock && listen_) ::unlink(opts_.unix_path.c_str());
}

bool Server::setup() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return log_fail("epoll_create1: %s", std::strerror(errno));

  // SIGCHLD (and SIGTERM/SIGINT outside a VM) arrive through a signalfd so
  // the loop handles them between events, never inside a handler.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT}) sigaddset(&set, s);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed pipe or socket is an EPIPE, not a death
  signal_fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return log_fail("signalfd: %s", std::strerror(errno));

  if (opts_.vsock) {
    listen_.reset(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = opts_.port;
    if (!listen_ || ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return log_fail("vsock port %u: %s", opts_.port, std::strerror(errno));
    }
  } else {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (opts_.unix_path.size() >= sizeof(addr.sun_path)) {
      return log_fail("socket path too long: %s", opts_.unix_path.c_str());
    }
    std::memcpy(addr.sun_path, opts_.unix_path.c_str(), opts_.unix_path.size());
    ::unlink(opts_.unix_path.c_str());
    listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listen_ || ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return log_fail("bind %s: %s", opts_.unix_path.c_str(), std::strerror(errno));
    }
  }
  if (::listen(listen_.get(), 4) != 0) return log_fail("listen: %s", std::strerror(errno));

  for (auto [fd, kind] : {std::pair{listen_.get(), kListen}, {signal_fd_.get(), kSignal}}) {
    epoll_event ev{EPOLLIN, {.u64 = key(0, kind)}};
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return log_fail("epoll_ctl: %s", std::strerror(errno));
    }
  }
  return true;
}

bool Server::run() {
  if (!setup()) return false;
  if (opts_.vsock) {
    HUSK_LOG("listening on vsock port %u", opts_.port);
  } else {
    HUSK_LOG("listening on %s", opts_.unix_path.c_str());
  }
  epoll_event events[32];
  while (!stop_) {
    const int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms());
    if (n < 0 && errno != EINTR) {
      HUSK_LOG("epoll_wait: %s", std::strerror(errno));
      ::usleep(10000);  // do not spin; the loop itself is still sound
    }
    for (int i = 0; i < n; ++i) dispatch(events[i]);
    check_timers();
    pump_downloads();
    flush_out();
  }
  return true;
}

int Server::timeout_ms() const {
  int64_t next = INT64_MAX;
  for (const auto& [serial, job] : jobs_) {
    for (int64_t t : {job->deadline_ns, job->linger_ns, job->next_cpu_poll_ns, job->out_hold_ns,
                      job->err_hold_ns}) {
      if (t != 0) next = std::min(next, t);
    }
  }
  int ms = -1;
  if (next != INT64_MAX) {
    const int64_t left = (next - monotonic_ns() + 999999) / 1000000;
    ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60000));
  }
  if (!dead_cgroups_.empty()) ms = ms < 0 ? 50 : std::min(ms, 50);
  // A download with nothing queued has no socket event to wake it: go
  // round again at once (other events still get their turn in between).
  if (conn_ && !downloads_.empty() && queued() == 0) ms = 0;
  return ms;
}

void Server::dispatch(const epoll_event& ev) {
  const uint64_t serial = ev.data.u64 >> 3;
  const auto kind = static_cast<Kind>(ev.data.u64 & 7);
  switch (kind) {
    case kListen: accept_conn(); break;
    case kSignal: on_signalfd(); break;
    case kConn: on_conn_event(ev.events); break;
    case kJobOut:
    case kJobErr:
    case kJobIn: on_job_event(serial, kind, ev.events); break;
  }
}

void Server::on_signalfd() {
  signalfd_siginfo si{};
  while (::read(signal_fd_.get(), &si, sizeof(si)) == static_cast<ssize_t>(sizeof(si))) {
    if (si.ssi_signo == SIGCHLD) continue;  // reaped below, once for all
    if (opts_.pid1) {
      HUSK_LOG("ignoring signal %u: PID 1 stays up", si.ssi_signo);
    } else {
      HUSK_LOG("signal %u: stopping", si.ssi_signo);
      stop_ = true;
    }
  }
  reap_children();
}

void Server::accept_conn() {
  sockaddr_vm peer{};
  socklen_t peer_len = sizeof(peer);
  UniqueFd fd(::accept4(listen_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  // Only the host: a peer inside the guest (vsock loopback) is closed
  // before it can replace the host's connection or read a byte (peer.h).
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
  if (conn_) drop_conn("replaced by a new connection");
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
  epoll_event ev{EPOLLIN, {.u64 = key(0, kConn)}};
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    HUSK_LOG("epoll_ctl conn: %s", std::strerror(errno));
    return;
  }
  conn_ = std::move(fd);
  conn_wants_out_ = false;
  HUSK_LOG("host connected");
}

void Server::drop_conn(const char* why) {
  if (!conn_) return;
  HUSK_LOG("host connection closed: %s", why);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn_.get(), nullptr);
  conn_.reset();
  in_len_ = 0;
  out_.clear();
  out_off_ = 0;
  output_off_ = output_end_ = 0;
  hello_done_ = false;
  close_after_flush_ = false;
  // A job without its host has nobody to report to: kill it.
  orphan_jobs();
  exec_args_.clear();
  abort_transfers();
}

void Server::on_conn_event(uint32_t events) {
  if (events & EPOLLOUT) flush_out();
  if (!conn_ || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || close_after_flush_) return;
  // Allocated (and zeroed) once; after the compaction below only an
  // unfinished frame (under kMaxFrame) stays, so the room is over kMaxFrame.
  if (in_.empty()) in_.resize(2 * kMaxFrame);
  const ssize_t n = ::read(conn_.get(), in_.data() + in_len_, in_.size() - in_len_);
  if (n == 0) return drop_conn("end of stream");
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) drop_conn(std::strerror(errno));
    return;
  }
  in_len_ += static_cast<size_t>(n);  // n <= in_.size() - in_len_
  size_t off = 0;
  while (!close_after_flush_) {
    proto::FrameView frame;
    const proto::Status s = proto::peek_frame(std::span(in_.data() + off, in_len_ - off), frame);
    if (s == proto::Status::kNeedMore) break;
    if (s == proto::Status::kTooLarge || s == proto::Status::kMalformed) {
      // The stream cannot be resynchronised: say why, then hang up.
      send_error(0, EPROTO, std::string("bad frame: ") + proto::status_name(s));
      close_after_flush_ = true;
      break;
    }
    if (s == proto::Status::kUnknownType) {
      send_error(frame.id, EPROTO, "unknown message type " + std::to_string(frame.type));
    } else {
      handle_frame(frame);
      if (!conn_) return;  // dropped while handling: in_len_ is 0
    }
    off += frame.size;
  }
  std::memmove(in_.data(), in_.data() + off, in_len_ - off);
  in_len_ -= off;
}

// Decodes the frame as M and hands it on, or answers a malformed one.
#define HUSK_DECODE(M, var)                                                          \
  proto::M var;                                                                      \
  if (const proto::Status s = proto::decode(frame, var); s != proto::Status::kOk) { \
    send_error(frame.id, EPROTO, #M ": " + std::string(proto::status_name(s)));     \
    return;                                                                          \
  }

void Server::handle_frame(const proto::FrameView& frame) {
  // peek_frame returned kOk, so the type is one of MsgType's values.
  const auto type = static_cast<proto::MsgType>(frame.type);
  if (!hello_done_ && type != proto::MsgType::kHello) {
    return send_error(frame.id, EPROTO, "Hello expected first");
  }
  switch (type) {
    case proto::MsgType::kHello: {
      HUSK_DECODE(Hello, hello);
      if (hello.major != proto::kVersionMajor) {
        send_error(frame.id, EPROTONOSUPPORT,
                   "protocol version " + std::to_string(hello.major) + "." +
                       std::to_string(hello.minor) + " not supported; agent speaks " +
                       std::to_string(proto::kVersionMajor) + "." +
                       std::to_string(proto::kVersionMinor));
        close_after_flush_ = true;
        return;
      }
      hello_done_ = true;
      proto::Hello reply;
      reply.features = proto::kFeaturePty | proto::kFeatureConcurrentExec |
                       (opts_.cgroups ? proto::kFeatureCgroups : 0);
      return send(frame.id, reply);
    }
    case proto::MsgType::kSetClock: {
      HUSK_DECODE(SetClock, m);
      // u64 nanoseconds fit time_t seconds for the next 500 years.
      const timespec ts{static_cast<time_t>(m.unix_ns / 1000000000),
                        static_cast<long>(m.unix_ns % 1000000000)};
      if (::clock_settime(CLOCK_REALTIME, &ts) != 0) {
        return send_error(frame.id, errno, std::string("clock_settime: ") + std::strerror(errno));
      }
      return send(frame.id, proto::Ack{});
    }
    case proto::MsgType::kReseed: {
      HUSK_DECODE(Reseed, m);
      if (auto err = reseed_kernel_rng(m.entropy); err != 0) {
        return send_error(frame.id, err, std::string("reseed: ") + std::strerror(err));
      }
      return send(frame.id, proto::Ack{});
    }
    case proto::MsgType::kConfigureNetwork: {
      HUSK_DECODE(ConfigureNetwork, m);
      if (const std::string bad = proto::network_config_error(m); !bad.empty()) {
        return send_error(frame.id, EINVAL, "ConfigureNetwork: " + bad);
      }
      // Outside a VM the interfaces and /etc are the machine's own.
      if (!opts_.pid1) {
        return send_error(frame.id, EPERM, "ConfigureNetwork: only the guest's PID 1 configures the network");
      }
      if (const StepError e = configure_network(m); e.err != 0) {
        HUSK_LOG("ConfigureNetwork: %s", e.message().c_str());
        return send_error(frame.id, e.err, "ConfigureNetwork: " + e.message());
      }
      HUSK_LOG("network: %s/%u via %s", proto::ipv4_text(m.address).c_str(), unsigned(m.prefix_len),
               m.gateway != 0 ? proto::ipv4_text(m.gateway).c_str() : "(no default route)");
      return send(frame.id, proto::Ack{});
    }
    case proto::MsgType::kSetHostname: {
      HUSK_DECODE(SetHostname, m);
      if (::sethostname(m.name.data(), m.name.size()) != 0) {
        return send_error(frame.id, errno, std::string("sethostname: ") + std::strerror(errno));
      }
      return send(frame.id, proto::Ack{});
    }
    case proto::MsgType::kShutdown: {
      HUSK_DECODE(Shutdown, m);
      send(frame.id, proto::Ack{});
      // Best effort to deliver the Ack before the VM goes away.
      for (int i = 0; i < 100 && conn_ && queued() != 0; ++i) {
        pollfd p{conn_.get(), POLLOUT, 0};
        ::poll(&p, 1, 10);
        flush_out();
      }
      // A written Ack is still only in this kernel's vsock queue: the reset
      // could win the race to the host. Wait (bounded) for the host to read
      // it and hang up; a host that never does costs one second.
      if (conn_) {
        ::shutdown(conn_.get(), SHUT_WR);
        wait_for_hangup(conn_.get(), 1000);
      }
      stop_ = true;
      return;
    }
    case proto::MsgType::kExecArgs: {
      HUSK_DECODE(ExecArgs, m);
      return on_exec_args(frame.id, std::move(m));
    }
    case proto::MsgType::kExec: {
      HUSK_DECODE(Exec, m);
      return on_exec(frame.id, std::move(m));
    }
    case proto::MsgType::kStdinData: {
      HUSK_DECODE(StdinData, m);
      return on_stdin(frame.id, std::move(m.data), false);
    }
    case proto::MsgType::kStdinClose: {
      HUSK_DECODE(StdinClose, m);
      return on_stdin(frame.id, {}, true);
    }
    case proto::MsgType::kSignal: {
      HUSK_DECODE(Signal, m);
      return on_signal(frame.id, m.signo);
    }
    case proto::MsgType::kCredit: {
      HUSK_DECODE(Credit, m);
      return on_credit(frame.id, m);
    }
    case proto::MsgType::kWriteFile: {
      HUSK_DECODE(WriteFile, m);
      return on_write_file(frame.id, std::move(m));
    }
    case proto::MsgType::kReadFile: {
      HUSK_DECODE(ReadFile, m);
      return on_read_file(frame.id, m);
    }
    case proto::MsgType::kStat: {
      HUSK_DECODE(Stat, m);
      return on_stat(frame.id, m);
    }
    default:
      return send_error(frame.id, EPROTO,
                        "message type " + std::to_string(frame.type) + " is not a request");
  }
}

#undef HUSK_DECODE

void Server::send_error(uint32_t id, int err, const std::string& message) {
  if (!conn_) return;
  // Errors are sent even after close_after_flush_ was set by the same frame.
  if (proto::append_frame(out_, id, proto::Error{err, message}) != proto::Status::kOk) {
    HUSK_LOG("error message too large to send");
  }
}

void Server::send_output_frame(size_t size) {
  if (!conn_ || close_after_flush_) return;  // nobody to send to, as send() does
  output_off_ = 0;
  output_end_ = size;
  flush_out();
}

// Sends from the queue until it is empty or the socket is full.
void Server::flush_out() {
  const bool was_queued = queued() != 0;
  auto send_some = [this](const uint8_t* data, size_t size) -> ssize_t {
    const ssize_t n = ::send(conn_.get(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) drop_conn(std::strerror(errno));
    return n;
  };
  while (conn_ && output_off_ < output_end_) {
    const ssize_t n = send_some(output_buf_.data() + output_off_, output_end_ - output_off_);
    if (n < 0) break;
    output_off_ += static_cast<size_t>(n);  // n <= output_end_ - output_off_
  }
  while (conn_ && output_off_ == output_end_ && out_off_ < out_.size()) {
    const ssize_t n = send_some(out_.data() + out_off_, out_.size() - out_off_);
    if (n < 0) break;
    out_off_ += static_cast<size_t>(n);
  }
  if (!conn_) return;  // dropped: the queue is gone, the jobs orphaned
  if (output_off_ == output_end_) output_off_ = output_end_ = 0;
  if (queued() == 0 && close_after_flush_) return drop_conn("protocol error");
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > (1u << 20)) {
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_off_));
    out_off_ = 0;
  }
  update_conn_interest();
  // The queue ran empty: the jobs' pipes may be read again.
  if (was_queued && queued() == 0) {
    for (auto& [serial, job] : jobs_) update_interest(*job);
  }
}

void Server::update_conn_interest() {
  const bool want = conn_ && queued() != 0;
  if (!conn_ || want == conn_wants_out_) return;
  epoll_event ev{EPOLLIN | (want ? EPOLLOUT : 0u), {.u64 = key(0, kConn)}};
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn_.get(), &ev);
  conn_wants_out_ = want;
}

}  // namespace husk::guest
