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
// An Exec whose argv and env do not fit one frame goes as ExecArgs parts
// and the Exec (guest-agent/protocol/exec_args.h); one over the agent's
// bound (8 MiB as Linux counts strings) is refused before anything is sent.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
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
  // credit, then closed.
  proto::StdinMode stdin_mode = proto::StdinMode::kNone;
  std::string stdin_data;
  bool pty = false;
  uint16_t rows = 24;
  uint16_t cols = 80;
  proto::Limits limits;
};

struct ExecCallbacks {
  std::function<void(uint32_t pid)> on_started;
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
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

class AgentClient {
 public:
  // Plain connect(2) to a Unix stream socket (an agent run with --listen unix:).
  [[nodiscard]] static Result<AgentClient> connect_unix(const std::string& path);
  // A VM's vsock device socket: connect, "CONNECT <port>\n", expect "OK ...\n".
  [[nodiscard]] static Result<AgentClient> connect_vsock_uds(const std::string& socket_path,
                                                             uint32_t port,
                                                             int timeout_ms = 5000);
  // An already connected stream.
  explicit AgentClient(UniqueFd fd) : stream_(std::move(fd)) {}

  // The longest wait for the agent's next frame (-1: no limit, the default).
  // exec() waits at least limits.wall_ms plus a grace period.
  void set_timeout_ms(int ms) { timeout_ms_ = ms; }
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
  [[nodiscard]] Result<void> set_hostname(const std::string& name);
  // Runs a job to its end. A job that could not start is a successful
  // result with started == false; errors are for the connection/protocol,
  // and E2BIG for argv and env too large to send.
  [[nodiscard]] Result<ExecResult> exec(const ExecRequest& req, const ExecCallbacks& cb = {});
  // Signals the job exec() is running (from a callback), its process group.
  [[nodiscard]] Result<void> signal_running(int signo);
  // Uploads `data` atomically (temporary file + rename) with `mode`.
  [[nodiscard]] Result<void> write_file(const std::string& path, std::string_view data,
                                        uint32_t mode = 0644, bool mkdirs = false,
                                        uint32_t uid = proto::kKeepId,
                                        uint32_t gid = proto::kKeepId);
  // Downloads a file; fails with EFBIG past max_bytes (0: no limit).
  [[nodiscard]] Result<std::string> read_file(const std::string& path, uint64_t max_bytes);
  [[nodiscard]] Result<FileStat> stat(const std::string& path, bool follow_symlinks = true);
  // Asks the agent to sync and reboot (a test agent exits).
  [[nodiscard]] Result<void> shutdown();

  [[nodiscard]] int fd() const { return stream_.fd(); }

 private:
  // The next frame of request `id` (others are stale and skipped), waiting
  // at most wait_ms per read; ETIMEDOUT when nothing comes.
  Result<proto::FrameView> await(uint32_t id, int wait_ms);
  // Waits for Ack (or Error) for `id`.
  Result<void> await_ack(uint32_t id);
  Result<void> stream_stdin(uint32_t id, std::string_view data, size_t& sent, uint64_t& credit,
                            bool& closed);

  FrameStream stream_;
  uint32_t next_id_ = 1;
  uint32_t running_id_ = 0;  // the Exec in progress, 0 none
  int timeout_ms_ = -1;
  uint32_t window_ = kDefaultOutputWindow;
  // The agent's protocol minor from hello(); until then, assume ours.
  uint16_t agent_minor_ = proto::kVersionMinor;
};

// The agent's Error frame as a husk::Error: its errno and "agent: message".
[[nodiscard]] Unexpected agent_error(const proto::FrameView& frame);

}  // namespace husk::agent
