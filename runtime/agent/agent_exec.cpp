// AgentClient::exec: one job from Exec to Exited, with credit-based flow
// control both ways (guest-agent/protocol/protocol.h explains the scheme).
#include <algorithm>
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

Result<void> AgentClient::stream_stdin(uint32_t id, std::string_view data, size_t& sent,
                                       uint64_t& credit, bool& closed) {
  while (sent < data.size() && credit > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>({data.size() - sent, credit, proto::kMaxChunk}));
    HUSK_TRY(send("exec: StdinData", id, proto::StdinData{std::string(data.substr(sent, n))}, budget(n).deadline));
    sent += n;
    credit -= n;
  }
  if (sent == data.size()) {
    HUSK_TRY(send("exec: StdinClose", id, proto::StdinClose{}, budget().deadline));
    closed = true;
  }
  return {};
}

Result<ExecResult> AgentClient::exec(const ExecRequest& req, const ExecCallbacks& cb) {
  const uint32_t id = next_id_++;
  proto::Exec msg{req.argv, req.env,  req.cwd,  req.uid,  req.gid,   req.stdin_mode,
                  {},       req.pty,  req.rows, req.cols, req.limits};
  std::string_view streamed;
  if (req.stdin_mode == proto::StdinMode::kData && req.stdin_data.size() <= kInlineStdinMax) {
    msg.stdin_data = req.stdin_data;
  } else if (req.stdin_mode != proto::StdinMode::kNone) {
    msg.stdin_mode = proto::StdinMode::kStream;
    streamed = req.stdin_data;
  }
  bool stdin_closed = msg.stdin_mode != proto::StdinMode::kStream;
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

  // The next frame of this run by whichever deadline applies; the message
  // of a timeout names the one that passed.
  const std::string end_what = fmt::format("exec: the run's end (wall limit {} ms + kill grace + {} ms)",
                                           req.limits.wall_ms, kExitGrace.count());
  const Budget no_end{Deadline::never(), std::chrono::milliseconds::max()};
  const auto next_event = [&](bool started) -> Result<proto::FrameView> {
    if (!started && (!end_budget || started_budget.deadline.time() <= end_budget->deadline.time())) {
      return await(id, started_budget, "exec: Started");
    }
    return end_budget ? await(id, *end_budget, end_what) : await(id, no_end, "exec");
  };
  ExecResult result;
  uint64_t credit[2] = {window_, window_};  // stdout, stderr: what the agent may still send
  uint64_t consumed[2] = {0, 0};            // delivered but not yet re-granted
  uint64_t stdin_credit = 0;
  size_t stdin_sent = 0;

  for (;;) {
    if (result.started && !stdin_closed) {
      HUSK_TRY(stream_stdin(id, streamed, stdin_sent, stdin_credit, stdin_closed));
    }
    HUSK_TRY_ASSIGN(const proto::FrameView frame, next_event(result.started));
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
        stdin_credit = std::min<uint64_t>(stdin_credit + c.bytes, uint64_t{1} << 40);
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
