// AgentClient::exec: one job from Exec to Exited, with credit-based flow
// control both ways (guest-agent/protocol/protocol.h explains the scheme),
// and the wait that also serves the job's live stdin and the caller's events.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "guest-agent/protocol/exec_args.h"
#include "runtime/agent/agent_client.h"
#include "runtime/common/scope_guard.h"

namespace husk::agent {

namespace {

// Stdin larger than this goes in StdinData frames rather than inside Exec.
constexpr size_t kInlineStdinMax = 512 * 1024;

Unexpected protocol_error(const std::string& what) {
  return Unexpected(Error{EPROTO, "agent: " + what});
}

template <typename M>
Result<M> decode_as(const proto::FrameView& frame) {
  M msg;
  if (const proto::Status s = proto::decode(frame, msg); s != proto::Status::kOk) {
    return protocol_error(std::string(proto::status_name(s)) + " in exec event type " +
                          std::to_string(frame.type));
  }
  return msg;
}

// The frames that start request `id`: the Exec alone when it fits one
// frame, else its argv and env in ExecArgs parts and then the Exec. Refuses,
// before anything is sent, what the agent would refuse.
Result<std::vector<uint8_t>> exec_frames(uint32_t id, proto::Exec msg, uint16_t agent_minor) {
  std::vector<uint8_t> out;
  if (proto::append_frame(out, id, msg) == proto::Status::kOk) return out;
  const uint64_t bytes = proto::exec_arg_bytes(msg.argv, msg.env);
  if (bytes > proto::kMaxExecArgBytes) {
    return Unexpected(Error{E2BIG, "agent: argv and env are " + std::to_string(bytes) +
                                       " bytes (" + std::to_string(msg.argv.size()) + " arguments, " +
                                       std::to_string(msg.env.size()) +
                                       " variables; each string counts its length + 9, as Linux "
                                       "counts them); the guest agent takes at most " +
                                       std::to_string(proto::kMaxExecArgBytes)});
  }
  for (const auto* list : {&msg.argv, &msg.env}) {
    for (size_t i = 0; i < list->size(); ++i) {
      if ((*list)[i].size() > proto::kMaxExecArgString) {
        return Unexpected(Error{E2BIG, std::string("agent: ") + (list == &msg.argv ? "argument " : "variable ") +
                                           std::to_string(i) + " is " + std::to_string((*list)[i].size()) +
                                           " bytes; one string can be at most " +
                                           std::to_string(proto::kMaxExecArgString) +
                                           " (Linux's own limit is 131072)"});
      }
    }
  }
  if (agent_minor < 2) {
    return Unexpected(Error{EPROTONOSUPPORT, "agent: argv and env need more than one frame, which the "
                                             "guest agent (protocol 1." + std::to_string(agent_minor) +
                                             ") cannot take; update the agent in the guest"});
  }
  for (const proto::ExecArgs& part : proto::split_exec_args(msg)) {
    // split_exec_args keeps each part within kExecArgsPartBytes and
    // kMaxListItems, so it fits a frame; a failure is a bug in the split.
    if (proto::append_frame(out, id, part) != proto::Status::kOk) {
      return fail("agent: ExecArgs part does not fit a frame");
    }
  }
  // Without argv and env the Exec holds its cwd, at most kInlineStdinMax
  // bytes of stdin and fixed fields.
  if (proto::append_frame(out, id, msg) != proto::Status::kOk) {
    return fail("agent: Exec too large for one frame even without argv and env");
  }
  return out;
}

}  // namespace

// The job's stdin as exec() sends it: first `data`, then (with `fd`) what
// is read from fd, all within `credit`, the bytes the agent may still take.
struct AgentClient::StdinState {
  std::string_view data;
  size_t sent = 0;       // of data
  int fd = -1;           // ExecRequest::stdin_fd
  uint64_t credit = 0;
  bool closed = true;    // StdinClose sent (or no stream at all)
  std::string buf;       // what one read of fd takes, kept across reads
};

Result<void> AgentClient::stream_stdin(uint32_t id, StdinState& in) {
  while (in.sent < in.data.size() && in.credit > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>({in.data.size() - in.sent, in.credit, proto::kMaxChunk}));
    HUSK_TRY(send("exec: StdinData", id, proto::StdinData{std::string(in.data.substr(in.sent, n))},
                  budget(n).deadline));
    in.sent += n;
    in.credit -= n;
  }
  if (in.sent == in.data.size() && in.fd < 0) {
    HUSK_TRY(send("exec: StdinClose", id, proto::StdinClose{}, budget().deadline));
    in.closed = true;
  }
  return {};
}

Result<void> AgentClient::pump_stdin(uint32_t id, StdinState& in) {
  // Called when poll(2) found fd readable, with credit left: this read
  // does not block (unless another reader took the bytes first).
  const size_t want = static_cast<size_t>(std::min<uint64_t>(in.credit, proto::kMaxChunk));
  if (in.buf.size() < want) in.buf.resize(want);
  const ssize_t n = ::read(in.fd, in.buf.data(), want);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return {};
  // EIO: a pseudo-terminal whose other side has closed; its end of file.
  if (n == 0 || (n < 0 && errno == EIO)) {
    HUSK_TRY(send("exec: StdinClose", id, proto::StdinClose{}, budget().deadline));
    in.closed = true;
    return {};
  }
  if (n < 0) return fail_errno("agent: exec: read stdin_fd");
  // 0 < n <= want <= in.credit.
  const size_t got = static_cast<size_t>(n);
  HUSK_TRY(send("exec: StdinData", id, proto::StdinData{in.buf.substr(0, got)}, budget(got).deadline));
  in.credit -= got;
  return {};
}

Result<std::optional<proto::FrameView>> AgentClient::next_exec_event(uint32_t id, StdinState& in,
                                                                     const ExecCallbacks& cb, const Budget& b,
                                                                     const std::string& what) {
  // Frames already received go first: poll(2) cannot see them.
  if (!stream_.buffered()) {
    std::array<pollfd, 3> fds{};
    size_t n = 0;
    fds[n++] = pollfd{stream_.fd(), POLLIN, 0};
    // Stdin only while the agent would take some of it (and after `data`):
    // a stdin without credit is left unread, not polled in a loop.
    const bool want_stdin = in.fd >= 0 && !in.closed && in.credit > 0 && in.sent == in.data.size();
    const size_t stdin_i = want_stdin ? n++ : 0;
    if (want_stdin) fds[stdin_i] = pollfd{in.fd, POLLIN, 0};
    // Without on_event nothing would consume what wakes event_fd: not polled.
    const size_t event_i = cb.event_fd >= 0 && cb.on_event ? n++ : 0;
    if (event_i != 0) fds[event_i] = pollfd{cb.event_fd, POLLIN, 0};
    // The deadline of the next event; a frame that has begun ends sooner.
    const Deadline wait = b.deadline.earlier(stream_.partial_deadline());
    const int rc = ::poll(fds.data(), n, wait.poll_ms());
    if (rc < 0 && errno == EINTR) return std::nullopt;  // the caller waits again
    if (rc < 0) return fail_errno("agent: exec: poll");
    for (size_t i = 1; i < n; ++i) {
      if (fds[i].revents & POLLNVAL) {
        return about("exec", Error{EBADF, fmt::format("agent: {} {} is not an open descriptor",
                                                      i == stdin_i ? "stdin_fd" : "event_fd", fds[i].fd)});
      }
    }
    // Hang-up and error count as readable: the read (or on_event) sees them.
    if (want_stdin && fds[stdin_i].revents != 0) HUSK_TRY(pump_stdin(id, in));
    if (event_i != 0 && fds[event_i].revents != 0) cb.on_event();
    if (rc > 0 && fds[0].revents == 0) return std::nullopt;
    // The agent's fd is readable (or hung up), or the wait is over.
  }
  // Only what has come: a guest that drips a frame holds no other event.
  auto frame = stream_.next(Deadline::after_ms(0));
  if (!frame) return about(what, frame.error());
  if (*frame && (*frame)->id == id) return **frame;
  // Nothing whole yet, or another id (the tail of a request abandoned
  // after an error, skipped): the deadline still runs.
  if (b.deadline.expired()) {
    const std::string why = fmt::format("agent: {}: no answer within {} ms (the guest agent does not respond)",
                                        what, b.length.count());
    stream_.mark_broken(why);
    return Unexpected(Error{ETIMEDOUT, why});
  }
  return std::nullopt;
}

Result<ExecResult> AgentClient::exec(const ExecRequest& req, const ExecCallbacks& cb) {
  const uint32_t id = next_id_++;
  proto::Exec msg{req.argv, req.env,  req.cwd,  req.uid,  req.gid,   req.stdin_mode,
                  {},       req.pty,  req.rows, req.cols, req.limits};
  if (req.stdin_fd >= 0 && req.stdin_mode != proto::StdinMode::kStream) {
    return Unexpected(Error{EINVAL, "agent: exec: stdin_fd needs stdin_mode kStream"});
  }
  std::string_view streamed;
  if (req.stdin_mode == proto::StdinMode::kData && req.stdin_data.size() <= kInlineStdinMax) {
    msg.stdin_data = req.stdin_data;
  } else if (req.stdin_mode != proto::StdinMode::kNone) {
    msg.stdin_mode = proto::StdinMode::kStream;
    streamed = req.stdin_data;
  }
  StdinState in;
  in.data = streamed;
  in.fd = req.stdin_fd;
  in.closed = msg.stdin_mode != proto::StdinMode::kStream;
  HUSK_TRY_ASSIGN(const std::vector<uint8_t> start, exec_frames(id, std::move(msg), agent_minor_));
  // The run's deadlines, from the moment its request goes out: Started (or
  // ExecFailed) within the call's budget, Exited by the wall limit plus the
  // kill grace plus kExitGrace. Without a wall limit the run may last, but
  // each of its frames still has the frame timeout.
  const Budget started_budget = budget(start.size());
  std::optional<Budget> end_budget;
  if (req.limits.wall_ms != 0) {
    const uint64_t grace_ms = req.limits.kill_signal != 0 ? req.limits.kill_grace_ms : 0;
    // Limits are at most a day each (the job parser's bounds), so no overflow;
    // a peer-built request is clamped to a year.
    const auto length = std::chrono::milliseconds(
        std::min<uint64_t>(req.limits.wall_ms + grace_ms, 365ull * 24 * 3600 * 1000)) + kExitGrace;
    end_budget = Budget{Deadline::after(length), length};
  }
  HUSK_TRY(write("exec", start, started_budget.deadline));
  HUSK_TRY(send("exec: Credit", id, proto::Credit{proto::Stream::kStdout, window_}, started_budget.deadline));
  HUSK_TRY(send("exec: Credit", id, proto::Credit{proto::Stream::kStderr, window_}, started_budget.deadline));
  running_id_ = id;
  ScopeGuard clear_running([this] { running_id_ = 0; });

  // The next frame of this run comes by whichever deadline applies; the
  // message of a timeout names the one that passed.
  const std::string started_what = "exec: Started";
  const std::string end_what = fmt::format("exec: the run's end (wall limit {} ms + kill grace + {} ms)",
                                           req.limits.wall_ms, kExitGrace.count());
  const std::string run_what = "exec";
  const Budget no_end{Deadline::never(), std::chrono::milliseconds::max()};
  ExecResult result;
  uint64_t credit[2] = {window_, window_};  // stdout, stderr: what the agent may still send
  uint64_t consumed[2] = {0, 0};            // delivered but not yet re-granted

  for (;;) {
    if (result.started && !in.closed) HUSK_TRY(stream_stdin(id, in));
    const bool to_start =
        !result.started && (!end_budget || started_budget.deadline.time() <= end_budget->deadline.time());
    const Budget& b = to_start ? started_budget : end_budget ? *end_budget : no_end;
    const std::string& what = to_start ? started_what : end_budget ? end_what : run_what;
    HUSK_TRY_ASSIGN(const std::optional<proto::FrameView> event, next_exec_event(id, in, cb, b, what));
    if (!event) continue;  // stdin or the caller's event was served, or nothing whole came yet
    const proto::FrameView& frame = *event;
    switch (static_cast<proto::MsgType>(frame.type)) {  // a known type: peek_frame checked
      case proto::MsgType::kStarted: {
        HUSK_TRY_ASSIGN(const proto::Started started, decode_as<proto::Started>(frame));
        if (result.started) return protocol_error("Started twice");
        result.started = true;
        result.pid = started.pid;
        if (cb.on_started) cb.on_started(started.pid);
        break;
      }
      case proto::MsgType::kCredit: {
        HUSK_TRY_ASSIGN(const proto::Credit c, decode_as<proto::Credit>(frame));
        if (c.stream != proto::Stream::kStdin) return protocol_error("credit for an output stream");
        in.credit = std::min<uint64_t>(in.credit + c.bytes, uint64_t{1} << 40);
        break;
      }
      case proto::MsgType::kOutput: {
        // A view into the receive buffer: the data is handed to the
        // callback without a copy.
        HUSK_TRY_ASSIGN(const proto::OutputView out, decode_as<proto::OutputView>(frame));
        if (!result.started || out.stream == proto::Stream::kStdin) {
          return protocol_error("output before Started or on stdin");
        }
        // stream is kStdout or kStderr here, so the index is 0 or 1.
        const int s = out.stream == proto::Stream::kStdout ? 0 : 1;
        if (out.data.size() > credit[s]) return protocol_error("output beyond the granted credit");
        credit[s] -= out.data.size();
        (s == 0 ? result.stdout_bytes : result.stderr_bytes) += out.data.size();
        const auto& sink = s == 0 ? cb.on_stdout : cb.on_stderr;
        if (sink) sink(std::string_view(reinterpret_cast<const char*>(out.data.data()), out.data.size()));
        // Re-grant only what the callback has consumed: the window bounds
        // what is in flight, so a slow consumer slows the job.
        consumed[s] += out.data.size();
        if (consumed[s] >= window_ / 2) {
          // consumed[s] < 1.5 * window_ <= 96 MiB: fits the u32 field.
          HUSK_TRY(send("exec: Credit", id, proto::Credit{out.stream, static_cast<uint32_t>(consumed[s])},
                        budget().deadline));
          credit[s] += consumed[s];
          consumed[s] = 0;
        }
        break;
      }
      case proto::MsgType::kExited: {
        HUSK_TRY_ASSIGN(result.exit, decode_as<proto::Exited>(frame));
        if (!result.started) return protocol_error("Exited before Started");
        return result;
      }
      case proto::MsgType::kExecFailed: {
        HUSK_TRY_ASSIGN(result.failure, decode_as<proto::ExecFailed>(frame));
        if (result.started) return protocol_error("ExecFailed after Started");
        return result;
      }
      case proto::MsgType::kError:
        return agent_error(frame);
      default:
        return protocol_error("unexpected message type " + std::to_string(frame.type) + " in exec");
    }
  }
}

}  // namespace husk::agent
