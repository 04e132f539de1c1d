// AgentClient: the host side of the husk agent protocol
// (guest-agent/protocol/protocol.h) over one connected stream: a Unix
// socket to a test agent, or a VM's vsock socket after Firecracker's
// `CONNECT <port>` handshake.
//
// Synchronous and single-threaded: each call sends its request and polls
// for the answer. exec() streams the job's output to callbacks and grants
// the agent credit only after a callback returns, so a slow consumer slows
// the job instead of growing a buffer. Everything the agent sends is
// untrusted input and is checked (frame bounds, credit, offsets).
//
// An interactive exec (husk-oci's keeper) needs no thread either: exec()
// polls the agent, the job's live stdin (ExecRequest::stdin_fd, read only
// within the agent's stdin credit, so stdin is not polled while there is
// none) and the caller's ExecCallbacks::event_fd in one poll(2), and
// takes only the agent bytes that are there, so a guest that drips a
// frame delays neither stdin nor the caller's events.
//
// Every call has a host-side deadline for the whole call, so a guest that
// does not answer, stalls or drips bytes cannot hold the host: a request
// must be answered within call_timeout() (file transfers get more time in
// proportion to their size, at kMinTransferRate), a frame once begun must
// be complete within the same time, and exec() must end by the run's wall
// limit + kill grace + kExitGrace. A call that times out names what timed
// out (ETIMEDOUT), and the connection is not used again: every later call
// fails at once, so the time lost to a silent guest is one deadline.
//
// An Exec whose argv and env do not fit one frame goes as ExecArgs parts
// and the Exec (guest-agent/protocol/exec_args.h); one over the agent's
// bound (8 MiB as Linux counts strings) is refused before anything is sent.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "runtime/agent/frame_stream.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::agent {

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // exactly the job's environment
  std::string cwd;               // empty: "/"
  uint32_t uid = proto::kKeepId;
  uint32_t gid = proto::kKeepId;
  // kData: stdin_data is the whole stdin (sent in the Exec frame when it
  // fits, else streamed). kStream: stdin_data is streamed under the agent's
  // credit, then what comes from stdin_fd, then closed.
  proto::StdinMode stdin_mode = proto::StdinMode::kNone;
  std::string stdin_data;
  // kStream only (EINVAL otherwise): the job's live stdin, -1 none. Read
  // only when poll(2) says it is readable and only as far as the agent's
  // credit goes (at most proto::kMaxChunk a read), so a blocking pipe or
  // terminal is fine; one read per wake-up, so what a terminal's line
  // discipline hands over goes as it comes. End of file (read gives 0, or
  // EIO: a pseudo-terminal whose other side has closed) closes the job's
  // stdin once (on a job's pty, that is ^D); any other read error fails
  // exec(). Not closed by exec(); the caller's to close after it returns.
  int stdin_fd = -1;
  bool pty = false;
  uint16_t rows = 24;
  uint16_t cols = 80;
  proto::Limits limits;
};

struct ExecCallbacks {
  std::function<void(uint32_t pid)> on_started;
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
  // The caller's events during the run, -1 none (or no on_event): whenever
  // event_fd polls readable (or hung up), on_event runs on the calling
  // thread, between frames, from the Exec's sending on (maybe before
  // Started). It must consume what made event_fd readable (read the
  // signalfd, accept the connection), or it runs again at once: a busy
  // loop; and return promptly, since the run's deadlines keep running. An
  // epoll fd watches many. on_event may call signal_running() and
  // resize_running(); not exec() or the other requests, which would mix
  // their answers with the job's frames.
  int event_fd = -1;
  std::function<void()> on_event;
};

struct ExecResult {
  bool started = false;        // false: the job never ran, see `failure`
  uint32_t pid = 0;            // in the guest's PID namespace
  proto::ExecFailed failure;   // valid when !started
  proto::Exited exit;          // valid when started
  uint64_t stdout_bytes = 0;   // as delivered to the callbacks
  uint64_t stderr_bytes = 0;
};

using FileStat = proto::StatResult;

// `e` about call `what`: "agent: X" becomes "agent: WHAT: X".
[[nodiscard]] Unexpected about(const std::string& what, Error e);

class AgentClient {
 public:
  // Plain connect(2) to a Unix stream socket (an agent run with --listen unix:).
  [[nodiscard]] static Result<AgentClient> connect_unix(const std::string& path);
  // A VM's vsock device socket: connect, "CONNECT <port>\n", expect "OK ...\n",
  // the whole handshake within `timeout`.
  [[nodiscard]] static Result<AgentClient> connect_vsock_uds(
      const std::string& socket_path, uint32_t port,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // An already connected stream.
  explicit AgentClient(UniqueFd fd) : stream_(std::move(fd)) {}

  // How long a request may take, from its first byte sent to the last byte
  // of its answer (Hello, SetClock, SetHostname, Stat, Shutdown, Signal, an
  // Exec's Started or ExecFailed). A healthy agent answers these in
  // milliseconds (the nested test host: an exec round trip in 20-60 ms);
  // 10 s leaves room for a guest loaded by its own job.
  static constexpr std::chrono::milliseconds kDefaultCallTimeout{10'000};
  // File transfers (write_file, read_file, an Exec's argv and stdin) get
  // call_timeout() plus one second per MiB: a guest must move data at 1 MiB/s
  // at least (the nested test host does 45 MiB/s and more).
  static constexpr uint64_t kMinTransferRate = 1u << 20;  // bytes per second
  // How long past a run's wall limit (plus its kill grace, when it has a
  // kill_signal) exec() waits for the agent's Exited: the agent kills the
  // run at its wall limit and reports at once, so this is only for a guest
  // too busy or too broken to report. A run without a wall limit has no
  // deadline for its end (a limit that is not set is not enforced), but
  // each frame of it still has one.
  static constexpr std::chrono::milliseconds kExitGrace{5'000};

  // Sets call_timeout() (also the frame timeout: how long one frame may take
  // once its first byte has come).
  void set_call_timeout(std::chrono::milliseconds t) {
    call_timeout_ = t;
    stream_.set_frame_timeout(t);
  }
  [[nodiscard]] std::chrono::milliseconds call_timeout() const { return call_timeout_; }
  // Output credit per stream: the bytes the agent may send beyond what the
  // callbacks have consumed. It is re-granted in halves, and the agent's
  // frames are up to 1 MiB, so a few MiB keep the stream from waiting on the
  // credit's round trip (`make bench-vsock` measures 256 KiB beside it).
  // What is actually buffered stays small: the agent holds one frame and
  // the socket buffers the rest.
  static constexpr uint32_t kDefaultOutputWindow = 8u << 20;
  // Output credit granted per stream; re-granted as the callbacks consume.
  void set_output_window(uint32_t bytes) { window_ = std::clamp<uint32_t>(bytes, 4096, 64u << 20); }

  // The version handshake; the agent's Hello (its features) on success.
  [[nodiscard]] Result<proto::Hello> hello();
  [[nodiscard]] Result<void> set_clock(uint64_t unix_ns);
  // Fresh randomness from this host for the guest kernel's generator (the
  // agent's Reseed): VMs restored from one snapshot draw apart from here.
  [[nodiscard]] Result<void> reseed();
  [[nodiscard]] Result<void> set_hostname(const std::string& name);
  // Configures the guest's network interface (the one with config.mac),
  // its default route, /etc/resolv.conf and /etc/hosts (the agent's
  // ConfigureNetwork, protocol 1.5). EINVAL, before anything is sent, for a
  // request the agent would refuse (guest-agent/protocol/network.h);
  // EPROTONOSUPPORT for an agent older than 1.5; the agent's errno and the
  // step that failed otherwise ("SIOCADDRT default via 10.0.2.2 dev eth0:
  // Network is unreachable").
  [[nodiscard]] Result<void> configure_network(const proto::ConfigureNetwork& config);
  // Runs a job to its end. A job that could not start is a successful
  // result with started == false; errors are for the connection/protocol,
  // E2BIG for argv and env too large to send, and ETIMEDOUT when the agent
  // did not start the job within call_timeout() or did not report its end
  // by limits.wall_ms + kill grace + kExitGrace.
  [[nodiscard]] Result<ExecResult> exec(const ExecRequest& req, const ExecCallbacks& cb = {});
  // Signals the job exec() is running (from a callback), its process group.
  [[nodiscard]] Result<void> signal_running(int signo);
  // Sets the terminal size of the job exec() is running (from a callback;
  // the agent's Resize, protocol 1.6): its pty's foreground process group
  // gets SIGWINCH. A job without a pty ignores it. EPROTONOSUPPORT for an
  // agent older than 1.6.
  [[nodiscard]] Result<void> resize_running(uint16_t rows, uint16_t cols);
  // Uploads `data` atomically (temporary file + rename) with `mode`.
  [[nodiscard]] Result<void> write_file(const std::string& path, std::string_view data,
                                        uint32_t mode = 0644, bool mkdirs = false,
                                        uint32_t uid = proto::kKeepId,
                                        uint32_t gid = proto::kKeepId);
  // Downloads a file; fails with EFBIG past max_bytes (0: no limit).
  [[nodiscard]] Result<std::string> read_file(const std::string& path, uint64_t max_bytes);
  [[nodiscard]] Result<FileStat> stat(const std::string& path, bool follow_symlinks = true);
  // The guest's boot as its own clock saw it (the agent's BootInfo, protocol
  // 1.7): the kernel's moments from its log and the agent's, by time;
  // EPROTO unless every name is short [a-z0-9_] and the times are in order.
  // EPROTONOSUPPORT for an agent older than 1.7.
  [[nodiscard]] Result<std::vector<proto::BootMark>> boot_info();
  // Asks the agent to sync and reboot (a test agent exits). A VM that goes
  // away before the Ack is read counts as shut down.
  [[nodiscard]] Result<void> shutdown();

  [[nodiscard]] int fd() const { return stream_.fd(); }
  // False once a call has timed out or the agent broke the protocol.
  [[nodiscard]] bool usable() const { return !stream_.broken(); }

 private:
  // A call's deadline and its length (for the message when it passes).
  struct Budget {
    Deadline deadline;
    std::chrono::milliseconds length;
  };
  // The time a request that moves `bytes` of data may take, and its budget from now.
  [[nodiscard]] std::chrono::milliseconds allowance(uint64_t bytes) const;
  [[nodiscard]] Budget budget(uint64_t bytes = 0) const;
  // Sends frames of request `what` by `deadline`. One that cannot be sent in
  // time leaves the guest unanswered for good: it is not asked again.
  Result<void> write(const char* what, std::span<const uint8_t> frames, Deadline deadline);
  template <typename M>
  Result<void> send(const char* what, uint32_t id, const M& msg, Deadline deadline) {
    std::vector<uint8_t> buf;
    if (proto::append_frame(buf, id, msg) != proto::Status::kOk) {
      return fail(std::string("agent: ") + what + ": message too large for one frame");
    }
    return write(what, buf, deadline);
  }
  // The next frame of request `id` (others are stale and skipped) by
  // `deadline`; ETIMEDOUT naming `what` when it does not come, and the
  // connection is not used again.
  Result<proto::FrameView> await(uint32_t id, const Budget& b, const std::string& what);
  // Waits for Ack (or Error) for `id`.
  Result<void> await_ack(uint32_t id, const Budget& b, const char* what);
  // exec()'s stdin and its wait for the next event (agent_exec.cpp).
  struct StdinState;
  Result<void> stream_stdin(uint32_t id, StdinState& in);
  Result<void> pump_stdin(uint32_t id, StdinState& in);
  Result<std::optional<proto::FrameView>> next_exec_event(uint32_t id, StdinState& in, const ExecCallbacks& cb,
                                                          const Budget& b, const std::string& what);

  FrameStream stream_;
  uint32_t next_id_ = 1;
  uint32_t running_id_ = 0;  // the Exec in progress, 0 none
  std::chrono::milliseconds call_timeout_ = kDefaultCallTimeout;
  uint32_t window_ = kDefaultOutputWindow;
  // The agent's protocol minor from hello(); until then, assume ours.
  uint16_t agent_minor_ = proto::kVersionMinor;
};

// The agent's Error frame as a husk::Error: its errno and "agent: message".
[[nodiscard]] Unexpected agent_error(const proto::FrameView& frame);


}  // namespace husk::agent
