// The agent's event loop and the requests of a host connection: the Hello
// handshake, dispatch, and the small requests (clock, hostname, reseed,
// network, shutdown). Connections (accept, framing, send queues) are in
// server_conn.cpp, jobs in server_jobs.cpp, files in server_files.cpp.
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
#include "guest-agent/src/boot_marks.h"
#include "guest-agent/src/log.h"
#include "guest-agent/src/network.h"
#include "guest-agent/src/pid1.h"
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
  for (auto& [serial, c] : conns_) abort_transfers(c);
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
  // Room for every connection we serve arriving at once (execs and probes
  // of one container start together); past it a connect(2) would wait or fail.
  if (::listen(listen_.get(), int{kMaxConnections}) != 0) return log_fail("listen: %s", std::strerror(errno));

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
  if (own_boot_marks_.empty()) {
    own_boot_marks_ = opts_.start_marks;
    own_boot_marks_.push_back({"agent_listening", boottime_us()});
  }
  if (opts_.vsock) {
    HUSK_LOG("listening on vsock port %u", opts_.port);
  } else {
    HUSK_LOG("listening on %s", opts_.unix_path.c_str());
  }
  // `husk.boot_marks=1`: the boot's moments on the console too, one line,
  // for a benchmark that times a VMM without an agent client (QEMU).
  if (opts_.pid1 && cmdline_value("husk.boot_marks") == "1") log_boot_marks();
  epoll_event events[32];
  while (!stop_) {
    const int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms());
    if (n < 0 && errno != EINTR) {
      HUSK_LOG("epoll_wait: %s", std::strerror(errno));
      ::usleep(10000);  // do not spin; the loop itself is still sound
    }
    for (int i = 0; i < n; ++i) dispatch(events[i]);
    check_timers();
    for (auto& [serial, c] : conns_) {
      pump_downloads(c);
      flush_out(c);
    }
    erase_dropped();
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
  for (const auto& [serial, c] : conns_) {
    if (c.open() && !c.downloads.empty() && c.queued() == 0) ms = 0;
  }
  return ms;
}

void Server::dispatch(const epoll_event& ev) {
  const uint64_t serial = ev.data.u64 >> 3;
  const auto kind = static_cast<Kind>(ev.data.u64 & 7);
  switch (kind) {
    case kListen: accept_conn(); break;
    case kSignal: on_signalfd(); break;
    case kConn: on_conn_event(serial, ev.events); break;
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

// Decodes the frame as M and hands it on, or answers a malformed one.
#define HUSK_DECODE(M, var)                                                          \
  proto::M var;                                                                      \
  if (const proto::Status s = proto::decode(frame, var); s != proto::Status::kOk) { \
    send_error(c, frame.id, EPROTO, #M ": " + std::string(proto::status_name(s)));  \
    return;                                                                          \
  }

void Server::handle_frame(Connection& c, const proto::FrameView& frame) {
  // peek_frame returned kOk, so the type is one of MsgType's values.
  const auto type = static_cast<proto::MsgType>(frame.type);
  if (!c.hello_done && type != proto::MsgType::kHello) {
    return send_error(c, frame.id, EPROTO, "Hello expected first");
  }
  switch (type) {
    case proto::MsgType::kHello: {
      HUSK_DECODE(Hello, hello);
      if (hello.major != proto::kVersionMajor) {
        send_error(c, frame.id, EPROTONOSUPPORT,
                   "protocol version " + std::to_string(hello.major) + "." +
                       std::to_string(hello.minor) + " not supported; agent speaks " +
                       std::to_string(proto::kVersionMajor) + "." +
                       std::to_string(proto::kVersionMinor));
        c.close_after_flush = true;
        return;
      }
      c.hello_done = true;
      if (!ready_marked_) {
        own_boot_marks_.push_back({"agent_ready", boottime_us()});
        ready_marked_ = true;
      }
      proto::Hello reply;
      reply.features = proto::kFeaturePty | proto::kFeatureConcurrentExec |
                       (opts_.cgroups ? proto::kFeatureCgroups : 0);
      return send(c, frame.id, reply);
    }
    case proto::MsgType::kSetClock: {
      HUSK_DECODE(SetClock, m);
      // u64 nanoseconds fit time_t seconds for the next 500 years.
      const timespec ts{static_cast<time_t>(m.unix_ns / 1000000000),
                        static_cast<long>(m.unix_ns % 1000000000)};
      if (::clock_settime(CLOCK_REALTIME, &ts) != 0) {
        return send_error(c, frame.id, errno, std::string("clock_settime: ") + std::strerror(errno));
      }
      return send(c, frame.id, proto::Ack{});
    }
    case proto::MsgType::kReseed: {
      HUSK_DECODE(Reseed, m);
      if (auto err = reseed_kernel_rng(m.entropy); err != 0) {
        return send_error(c, frame.id, err, std::string("reseed: ") + std::strerror(err));
      }
      return send(c, frame.id, proto::Ack{});
    }
    case proto::MsgType::kConfigureNetwork: {
      HUSK_DECODE(ConfigureNetwork, m);
      if (const std::string bad = proto::network_config_error(m); !bad.empty()) {
        return send_error(c, frame.id, EINVAL, "ConfigureNetwork: " + bad);
      }
      // Outside a VM the interfaces and /etc are the machine's own.
      if (!opts_.pid1) {
        return send_error(c, frame.id, EPERM, "ConfigureNetwork: only the guest's PID 1 configures the network");
      }
      if (const StepError e = configure_network(m); e.err != 0) {
        HUSK_LOG("ConfigureNetwork: %s", e.message().c_str());
        return send_error(c, frame.id, e.err, "ConfigureNetwork: " + e.message());
      }
      HUSK_LOG("network: %s/%u via %s", proto::ipv4_text(m.address).c_str(), unsigned(m.prefix_len),
               m.gateway != 0 ? proto::ipv4_text(m.gateway).c_str() : "(no default route)");
      return send(c, frame.id, proto::Ack{});
    }
    case proto::MsgType::kSetHostname: {
      HUSK_DECODE(SetHostname, m);
      if (::sethostname(m.name.data(), m.name.size()) != 0) {
        return send_error(c, frame.id, errno, std::string("sethostname: ") + std::strerror(errno));
      }
      return send(c, frame.id, proto::Ack{});
    }
    case proto::MsgType::kShutdown: {
      HUSK_DECODE(Shutdown, m);
      return on_shutdown(c, frame.id);
    }
    case proto::MsgType::kExecArgs: {
      HUSK_DECODE(ExecArgs, m);
      return on_exec_args(c, frame.id, std::move(m));
    }
    case proto::MsgType::kExec: {
      HUSK_DECODE(Exec, m);
      return on_exec(c, frame.id, std::move(m));
    }
    case proto::MsgType::kStdinData: {
      HUSK_DECODE(StdinData, m);
      return on_stdin(c, frame.id, std::move(m.data), false);
    }
    case proto::MsgType::kStdinClose: {
      HUSK_DECODE(StdinClose, m);
      return on_stdin(c, frame.id, {}, true);
    }
    case proto::MsgType::kSignal: {
      HUSK_DECODE(Signal, m);
      return on_signal(c, frame.id, m.signo);
    }
    case proto::MsgType::kResize: {
      HUSK_DECODE(Resize, m);
      return on_resize(c, frame.id, m);
    }
    case proto::MsgType::kCredit: {
      HUSK_DECODE(Credit, m);
      return on_credit(c, frame.id, m);
    }
    case proto::MsgType::kWriteFile: {
      HUSK_DECODE(WriteFile, m);
      return on_write_file(c, frame.id, std::move(m));
    }
    case proto::MsgType::kReadFile: {
      HUSK_DECODE(ReadFile, m);
      return on_read_file(c, frame.id, m);
    }
    case proto::MsgType::kStat: {
      HUSK_DECODE(Stat, m);
      return on_stat(c, frame.id, m);
    }
    case proto::MsgType::kBootInfo: {
      HUSK_DECODE(BootInfo, m);
      return on_boot_info(c, frame.id);
    }
    default:
      return send_error(c, frame.id, EPROTO,
                        "message type " + std::to_string(frame.type) + " is not a request");
  }
}

#undef HUSK_DECODE

const std::vector<proto::BootMark>& Server::kernel_boot_marks() {
  // Outside a VM the kernel's log is the machine's own: not the guest's boot.
  if (!kernel_boot_marks_) {
    kernel_boot_marks_ = opts_.pid1 ? kernel_marks(read_kernel_log()) : std::vector<proto::BootMark>{};
  }
  return *kernel_boot_marks_;
}

void Server::on_boot_info(Connection& c, uint32_t id) {
  send(c, id, boot_report(kernel_boot_marks(), own_boot_marks_));
}

void Server::log_boot_marks() {
  std::string line;
  for (const proto::BootMark& m : boot_report(kernel_boot_marks(), own_boot_marks_).marks) {
    char item[64];
    std::snprintf(item, sizeof item, " %s=%llu.%03llu", m.name.c_str(),
                  static_cast<unsigned long long>(m.at_us / 1000), static_cast<unsigned long long>(m.at_us % 1000));
    line += item;
  }
  HUSK_LOG("boot marks (ms):%s", line.c_str());
}

void Server::on_shutdown(Connection& c, uint32_t id) {
  send(c, id, proto::Ack{});
  // Best effort to deliver the Ack before the VM goes away.
  for (int i = 0; i < 100 && c.open() && c.queued() != 0; ++i) {
    pollfd p{c.fd.get(), POLLOUT, 0};
    ::poll(&p, 1, 10);
    flush_out(c);
  }
  // A written Ack is still only in this kernel's vsock queue: the reset
  // could win the race to the host. Wait (bounded) for the host to read
  // it and hang up; a host that never does costs one second. The other
  // connections' hosts learn of it when the VM goes away.
  if (c.open()) {
    ::shutdown(c.fd.get(), SHUT_WR);
    wait_for_hangup(c.fd.get(), 1000);
  }
  stop_ = true;
}

}  // namespace husk::guest
