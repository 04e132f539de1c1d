// One host connection of the agent (server.h): its socket, its receive and
// send queues, its Hello handshake, the Execs it is sending in parts, and its
// file transfers. Its jobs are in the Server's job table, each naming the
// connection that started it (Job::conn); request ids are this connection's
// own, so two connections may use the same id for different requests.
//
// Memory per connection: the receive buffer starts at kInitialReceive and
// grows to two maximal frames only for a connection that sends a frame
// larger than that (a WriteFile chunk, a large Exec); the Output buffer
// (one frame, 1 MiB) is allocated when one of its jobs first has output.
// A probe that runs `true` costs tens of KiB, not megabytes, and
// kMaxConnections of them stay small in a 128 MiB guest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "guest-agent/protocol/exec_args.h"
#include "guest-agent/protocol/wire.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

// Host connections served at once: the container's keeper holds one for
// the container's life, and each exec (or Kubernetes probe) opens its own.
// One more is closed as soon as it is accepted.
inline constexpr size_t kMaxConnections = 16;

// A WriteFile in progress: chunks go to tmp_path, renamed to path after the last.
struct Upload {
  UniqueFd fd;
  std::string tmp_path;
  std::string path;
  uint64_t written = 0;
};

// A ReadFile in progress: the next chunk is read while the send queue is short.
struct Download {
  uint32_t id = 0;
  UniqueFd fd;
  uint64_t offset = 0;
  uint64_t max_bytes = 0;
};

struct Connection {
  static constexpr size_t kMaxFrame = agent::proto::kLengthSize + agent::proto::kMaxFrameBody;
  static constexpr size_t kInitialReceive = 64 * 1024;
  // File chunks and job output are read only below this many bytes queued.
  static constexpr size_t kOutHighWater = 512 * 1024;

  uint64_t serial = 0;  // agent-wide, never reused: the epoll key and Job::conn
  UniqueFd fd;          // closed when the connection is dropped (then erased)
  bool hello_done = false;
  bool close_after_flush = false;  // a protocol error: send what is queued, then hang up
  bool wants_out = false;          // EPOLLOUT registered

  // Received bytes not yet handled (an unfinished frame after each read).
  std::vector<uint8_t> in;
  size_t in_len = 0;

  // The send queue: an Output frame built in place (output_buf from
  // output_off to output_end) first, then out from out_off. An Output
  // frame is built only when the queue is empty, so this is sending order,
  // and job output waits in its pipe rather than in a copy.
  std::vector<uint8_t> out;
  size_t out_off = 0;
  std::vector<uint8_t> output_buf;  // one Output frame: header, then the data read after it
  size_t output_off = 0;            // sent so far
  size_t output_end = 0;            // the frame's size; == output_off: none pending

  agent::proto::ExecArgsCollector exec_args;  // Execs arriving in parts
  std::map<uint32_t, Upload> uploads;         // by request id
  std::vector<Download> downloads;

  [[nodiscard]] bool open() const { return fd.valid(); }
  [[nodiscard]] size_t queued() const { return (output_end - output_off) + (out.size() - out_off); }
  [[nodiscard]] bool backlogged() const { return queued() >= kOutHighWater; }

  // Room for the next read, with in[0, in_len) an unfinished frame (the
  // handled ones are compacted away). The buffer grows, once, to two
  // maximal frames when that frame's length field says it does not fit;
  // peek_frame has refused a length over kMaxFrameBody, so the frame is
  // under kMaxFrame and at full size the room is over kMaxFrame.
  [[nodiscard]] size_t receive_room() {
    if (in.empty()) in.resize(kInitialReceive);  // zeroed: nothing stale is ever read
    if (in.size() < 2 * kMaxFrame && in_len >= agent::proto::kLengthSize) {
      const size_t body = size_t{in[0]} | size_t{in[1]} << 8 | size_t{in[2]} << 16 | size_t{in[3]} << 24;
      if (agent::proto::kLengthSize + body > in.size()) in.resize(2 * kMaxFrame);
    }
    return in.size() - in_len;
  }
};

}  // namespace husk::guest
