// libFuzzer target for the guest agent's side of the protocol: what a
// hostile or broken host sends, through the agent's frame parsing
// (guest-agent/protocol/wire.h, protocol.h) and its ExecArgs collection
// (exec_args.h).
//
// The agent's Server cannot run in a fuzzer: every well-formed request acts
// on the machine (SetClock sets the clock, Exec runs programs, WriteFile
// writes files). So this target drives the protocol headers the Server is
// built from exactly as its receive path does (server_conn.cpp
// on_conn_event, server.cpp handle_frame, server_jobs.cpp on_exec_args and
// on_exec), for one connection: bytes arrive in pieces into the
// connection's receive buffer (guest-agent/src/connection.h, the agent's
// own: 64 KiB that grows to two maximal frames when a frame needs it),
// frames are located with peek_frame, decoded per type, the Hello gate is
// kept, and ExecArgs parts and Execs go through the connection's
// ExecArgsCollector. Job-scoped frames (Signal, Resize, ...) for any id are
// decoded and change nothing here.
//
// Checked, besides no crash, leak or hang: the codec checks on every frame
// (agent_codec.h); the receive buffer always has room for the next read;
// the collector never holds more than kMaxExecArgBytes or
// kMaxPendingExecs; an Exec it completes is within kMaxExecArgBytes; the
// host's split_exec_args of any decoded Exec, fed back through a collector,
// gives back exactly that Exec's argv and env.
//
// Input: records until the input ends: u8 kind, then a raw chunk (u16 n, n
// bytes), a repeat of the last chunk, a frame built from type, id and
// payload, or a large ExecArgs part. Build and run: `make fuzz`.
#include <algorithm>
#include <set>

#include "guest-agent/protocol/exec_args.h"
#include "guest-agent/src/connection.h"
#include "tests/fuzz/agent_codec.h"

namespace {

using namespace husk;
using namespace husk::fuzz;

constexpr size_t kMaxFrame = proto::kLengthSize + proto::kMaxFrameBody;
constexpr size_t kMaxRecords = 64;
// Repeats and synthesised parts can make megabytes from a few input bytes:
// bound what one run feeds the agent.
constexpr size_t kMaxFedBytes = 12u << 20;

class AgentModel {
 public:
  // One read(2)'s worth of bytes from the host.
  void receive(std::span<const uint8_t> chunk) {
    std::vector<uint8_t>& in = conn_.in;
    size_t& in_len = conn_.in_len;
    while (!chunk.empty() && !closed_) {
      // The Server reads at most the room it has: the buffer grows when an
      // unfinished frame needs it, so a frame peek_frame accepts always fits.
      const size_t n = std::min(chunk.size(), conn_.receive_room());
      FUZZ_CHECK(n > 0);
      FUZZ_CHECK(in_len + n <= in.size());
      std::memcpy(in.data() + in_len, chunk.data(), n);
      in_len += n;
      chunk = chunk.subspan(n);
      size_t off = 0;
      while (!closed_) {
        proto::FrameView frame;
        const proto::Status s = proto::peek_frame(std::span(in.data() + off, in_len - off), frame);
        if (s == proto::Status::kNeedMore) break;
        if (s == proto::Status::kTooLarge || s == proto::Status::kMalformed) {
          closed_ = true;  // an Error, then the connection is dropped
          break;
        }
        FUZZ_CHECK(frame.size <= in_len - off);
        if (s == proto::Status::kOk) handle_frame(frame);
        off += frame.size;
      }
      std::memmove(in.data(), in.data() + off, in_len - off);
      in_len -= off;
      // An unfinished frame is always shorter than a whole one.
      FUZZ_CHECK(closed_ || in_len < kMaxFrame);
    }
  }

  [[nodiscard]] bool closed() const { return closed_; }

 private:
  void handle_frame(const proto::FrameView& frame) {
    const proto::Status own = check_frame_codec(frame);
    const auto type = static_cast<proto::MsgType>(frame.type);
    if (!hello_done_ && type != proto::MsgType::kHello) return;  // "Hello expected first"
    if (own != proto::Status::kOk) return;                      // "malformed payload"
    switch (type) {
      case proto::MsgType::kHello: {
        proto::Hello h;
        FUZZ_CHECK(proto::decode(frame, h) == proto::Status::kOk);
        if (h.major != proto::kVersionMajor) {
          closed_ = true;
        } else {
          hello_done_ = true;
        }
        break;
      }
      case proto::MsgType::kExecArgs: {
        proto::ExecArgs part;
        FUZZ_CHECK(proto::decode(frame, part) == proto::Status::kOk);
        if (jobs_.count(frame.id) != 0) break;  // EEXIST
        const auto outcome = collector_.add(frame.id, std::move(part));
        if (outcome == proto::ExecArgsCollector::Outcome::kTooMany) {
          FUZZ_CHECK(collector_.pending() == proto::kMaxPendingExecs);
          closed_ = true;  // EBUSY, then hang up
        }
        break;
      }
      case proto::MsgType::kExec: {
        proto::Exec exec;
        FUZZ_CHECK(proto::decode(frame, exec) == proto::Status::kOk);
        if (jobs_.count(frame.id) != 0) break;  // EEXIST
        check_split_roundtrip(exec);
        const auto outcome = collector_.finish(frame.id, exec);
        if (outcome == proto::ExecArgsCollector::Outcome::kOk) {
          FUZZ_CHECK(proto::exec_arg_bytes(exec.argv, exec.env) <= proto::kMaxExecArgBytes);
          // The Server starts a job only for a non-empty argv[0].
          if (!exec.argv.empty() && !exec.argv[0].empty() && jobs_.size() < 64) jobs_.insert(frame.id);
        }
        break;
      }
      case proto::MsgType::kResize: {
        // Any size (0 x 0 too) is passed to TIOCSWINSZ as it is.
        proto::Resize r;
        FUZZ_CHECK(proto::decode(frame, r) == proto::Status::kOk);
        break;
      }
      case proto::MsgType::kSignal:
      case proto::MsgType::kStdinClose:
        // Ends nothing here; a Signal with any number is the job's business.
        break;
      default:
        break;
    }
    FUZZ_CHECK(collector_.bytes() <= proto::kMaxExecArgBytes);
    FUZZ_CHECK(collector_.pending() <= proto::kMaxPendingExecs);
  }

  // What the host does with an Exec too large for one frame, undone by the
  // agent's collector, must give back the same argv and env.
  static void check_split_roundtrip(const proto::Exec& exec) {
    if (proto::exec_arg_bytes(exec.argv, exec.env) > proto::kMaxExecArgBytes) return;
    for (const auto* list : {&exec.argv, &exec.env}) {
      for (const std::string& s : *list) {
        if (s.size() > proto::kMaxExecArgString) return;  // the host refuses these first
      }
    }
    proto::Exec copy = exec;
    const std::vector<proto::ExecArgs> parts = proto::split_exec_args(copy);
    FUZZ_CHECK(copy.argv.empty() && copy.env.empty());
    proto::ExecArgsCollector collector;
    for (const proto::ExecArgs& part : parts) {
      std::vector<uint8_t> frame;
      FUZZ_CHECK(proto::append_frame(frame, 7, part) == proto::Status::kOk);  // each part fits a frame
      FUZZ_CHECK(collector.add(7, proto::ExecArgs(part)) == proto::ExecArgsCollector::Outcome::kOk);
    }
    FUZZ_CHECK(collector.finish(7, copy) == proto::ExecArgsCollector::Outcome::kOk);
    FUZZ_CHECK(copy.argv == exec.argv && copy.env == exec.env);
    FUZZ_CHECK(collector.pending() == 0 && collector.bytes() == 0);
  }

  husk::guest::Connection conn_;  // its receive buffer and in_len
  bool hello_done_ = false;
  bool closed_ = false;
  proto::ExecArgsCollector collector_;
  std::set<uint32_t> jobs_;
};

// One frame with a correct length field.
std::vector<uint8_t> make_frame(uint16_t type, uint32_t id, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out(proto::kHeaderSize + payload.size());
  const uint32_t body = static_cast<uint32_t>(payload.size() + 6);
  std::memcpy(out.data(), &body, 4);
  std::memcpy(out.data() + 4, &type, 2);
  std::memcpy(out.data() + 6, &id, 4);
  if (!payload.empty()) std::memcpy(out.data() + proto::kHeaderSize, payload.data(), payload.size());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  AgentModel agent;
  std::vector<uint8_t> last;
  size_t fed = 0;
  auto feed = [&](std::span<const uint8_t> bytes, uint8_t pieces) {
    // In up to four reads, as the socket happens to deliver them.
    const size_t parts = 1 + pieces % 4;
    size_t off = 0;
    for (size_t i = 0; i < parts && off < bytes.size(); ++i) {
      const size_t n = i + 1 == parts ? bytes.size() - off : std::min(bytes.size() - off, size_t{1} << (pieces >> 4));
      agent.receive(bytes.subspan(off, n));
      off += n;
    }
    if (off < bytes.size()) agent.receive(bytes.subspan(off));
    fed += bytes.size();
  };
  for (size_t i = 0; i < kMaxRecords && !in.empty() && !agent.closed() && fed < kMaxFedBytes; ++i) {
    const uint8_t kind = in.u8();
    switch (kind % 4) {
      case 0: {  // raw bytes
        const auto bytes = in.bytes(in.u16());
        last.assign(bytes.begin(), bytes.end());
        feed(bytes, kind);
        break;
      }
      case 1: {  // the last chunk again, up to 16 times
        const size_t times = 1 + in.u8() % 16;
        for (size_t t = 0; t < times && fed < kMaxFedBytes && !agent.closed(); ++t) feed(last, kind);
        break;
      }
      case 2: {  // a frame with a true length
        const uint16_t type = in.u16();
        const uint32_t id = in.u32();
        const auto payload = in.bytes(in.u16());
        last = make_frame(type, id, payload);
        feed(last, kind);
        break;
      }
      default: {  // a large ExecArgs part: many copies of one string, up to a frame
        const uint32_t id = in.u32();
        // Up to a whole frame only for kinds from 0xf0: big parts are slow.
        const size_t want = kind >= 0xf0 ? in.u16() + 1 : in.u8() + 1;
        const std::string item = in.string();
        const size_t count = std::min({want, size_t{proto::kMaxListItems},
                                       (proto::kMaxPayload - 8) / (4 + item.size())});
        // argv: count, then count times (length, bytes); env: empty. Built
        // by copying one element (the Writer's byte loop is slow here).
        std::vector<uint8_t> element(4 + item.size());
        const uint32_t len = static_cast<uint32_t>(item.size());
        std::memcpy(element.data(), &len, 4);
        if (!item.empty()) std::memcpy(element.data() + 4, item.data(), item.size());
        std::vector<uint8_t> payload(4 + count * element.size() + 4, 0);
        const uint32_t n = static_cast<uint32_t>(count);
        std::memcpy(payload.data(), &n, 4);
        for (size_t k = 0; k < count; ++k) std::memcpy(payload.data() + 4 + k * element.size(), element.data(), element.size());
        last = make_frame(static_cast<uint16_t>(proto::MsgType::kExecArgs), id, payload);
        feed(last, kind);
        break;
      }
    }
  }
  return 0;
}
