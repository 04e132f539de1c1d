// libFuzzer target for the host side of the agent protocol
// (runtime/agent/: FrameStream, AgentClient and its exec loop) reading what
// a hostile guest agent sends. The input is a script of host requests, each
// with the bytes the "agent" answers it with: frames of any type, length,
// id and payload, truncated frames, garbage. The host end is an AgentClient
// on one end of a socketpair; all the agent's bytes are on the other end,
// followed by end of stream, before the first request, so the client never
// waits (a missing answer is the end of the stream) and the target needs no
// timeout setting of the client's.
//
// Checked, besides no crash, leak or hang: every frame the host sends is
// well-formed and of a host-to-agent type; it sends no more stdin than the
// agent granted credit for; read_file never returns more than max_bytes;
// exec's byte counts match what reached the callbacks; every frame of the
// agent's bytes passes the codec checks (agent_codec.h).
//
// Input: ops until the input ends, each: u8 op, its fields, u16 n and n
// bytes of agent output. Build and run: `make fuzz`.
#include <sys/socket.h>

#include <algorithm>
#include <set>

#include "runtime/agent/agent_client.h"
#include "tests/fuzz/agent_codec.h"

namespace {

using namespace husk;
using namespace husk::fuzz;

constexpr size_t kMaxOps = 24;
constexpr int kBufferBytes = 4 << 20;

const std::set<uint16_t>& host_types() {
  static const std::set<uint16_t> types = [] {
    std::set<uint16_t> t;
    for (proto::MsgType m : {proto::MsgType::kHello, proto::MsgType::kSetClock, proto::MsgType::kSetHostname,
                             proto::MsgType::kShutdown, proto::MsgType::kExec, proto::MsgType::kExecArgs,
                             proto::MsgType::kStdinData, proto::MsgType::kStdinClose, proto::MsgType::kSignal,
                             proto::MsgType::kCredit, proto::MsgType::kWriteFile, proto::MsgType::kReadFile,
                             proto::MsgType::kStat}) {
      t.insert(static_cast<uint16_t>(m));
    }
    return t;
  }();
  return types;
}

// A string for a C-string field (name, path, argv). The host encodes an
// embedded NUL as it is and the agent refuses the frame as malformed (see
// tests/fuzz/README.md, "findings"); callers are expected not to pass one,
// so the script does not either.
std::string c_string(Input& in, size_t max) {
  std::string s = in.string(max);
  if (!no_skip()) std::replace(s.begin(), s.end(), '\0', '_');
  return s;
}

void grow_buffers(int fd) {
  // Root may exceed the sysctl limits; otherwise the plain option caps them.
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kBufferBytes, sizeof kBufferBytes) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kBufferBytes, sizeof kBufferBytes);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kBufferBytes, sizeof kBufferBytes) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kBufferBytes, sizeof kBufferBytes);
  }
}

// One host request of the script (see run).
struct Op {
  uint8_t op = 0;
  uint64_t value = 0;
  uint8_t sel = 0;
  std::string text;
  agent::ExecRequest req;
};

class Session {
 public:
  Session() {
    int fds[2];
    FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0);
    grow_buffers(fds[0]);
    grow_buffers(fds[1]);
    // The host blocks while its socket is full: uploads of several chunks
    // only where the buffer takes them whole.
    int sndbuf = 0;
    socklen_t len = sizeof sndbuf;
    big_uploads_ = ::getsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 && sndbuf >= (2 << 20);
    agent_ = UniqueFd(fds[1]);
    client_.emplace(UniqueFd(fds[0]));
  }

  // Reads the script and the agent's bytes, puts all of those on the
  // stream with its end, then runs the requests.
  void run(Input& in) {
    std::vector<Op> ops;
    std::vector<uint8_t> agent;
    for (size_t i = 0; i < kMaxOps && !in.empty(); ++i) {
      ops.push_back(parse_op(in));
      const auto bytes = in.bytes(in.u16());
      agent.insert(agent.end(), bytes.begin(), bytes.end());
    }
    agent_says(agent);
    for (const Op& op : ops) {
      run_op(op);
      check_host_frames();
    }
  }

 private:
  Op parse_op(Input& in) {
    Op o;
    o.op = in.u8() % 10;
    switch (o.op) {
      case 1: o.value = in.u64(); break;
      case 2: o.text = c_string(in, 64); break;
      case 3: o.req = exec_request(in, o.sel); break;
      case 4:
      case 5:
        o.sel = in.u8();
        o.text = c_string(in, 64);
        break;
      case 6: o.sel = in.u8(); break;
      case 8: o.value = in.u32(); break;
      default: break;
    }
    return o;
  }

  void run_op(const Op& o) {
    switch (o.op) {
      case 0: (void)client_->hello(); break;
      case 1: (void)client_->set_clock(o.value); break;
      case 2: (void)client_->set_hostname(o.text); break;
      case 3: exec(o.req, o.sel & 0x40); break;
      case 4: {
        // A large upload takes several WriteFile chunks and looks for an
        // early answer between them.
        const bool big = (o.sel & 1) && big_uploads_;
        const size_t size = big ? proto::kMaxChunk + 1 + (o.sel >> 1) : o.sel >> 1;
        (void)client_->write_file(o.text, std::string(size, 'w'), 0600, o.sel & 2);
        break;
      }
      case 5: {
        const uint64_t maxes[] = {0, 1, 100, 4096};
        const uint64_t max_bytes = maxes[o.sel & 3];
        auto got = client_->read_file("/x" + o.text, max_bytes);
        if (got && max_bytes != 0) FUZZ_CHECK(got->size() <= max_bytes);
        break;
      }
      case 6: (void)client_->stat("/y", o.sel & 1); break;
      case 7: (void)client_->shutdown(); break;
      case 8: client_->set_output_window(static_cast<uint32_t>(o.value)); break;
      default: break;  // nothing asked: the agent's bytes are stale frames for later requests
    }
  }

  // All the agent's bytes, then the end of its stream. Every whole frame
  // goes through the codec checks; the stdin credit it grants bounds what
  // the host may send.
  void agent_says(std::span<const uint8_t> bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t w = ::send(agent_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w <= 0) break;  // the host's buffer is full: the rest is lost, as with a stalled guest
      done += static_cast<size_t>(w);
    }
    ::shutdown(agent_.get(), SHUT_WR);
    proto::Status last;
    (void)for_each_frame(bytes.first(done), last, [&](const proto::FrameView& f) {
      (void)check_frame_codec(f);
      proto::Credit c;
      if (proto::decode(f, c) == proto::Status::kOk && c.stream == proto::Stream::kStdin) stdin_granted_ += c.bytes;
    });
  }

  static agent::ExecRequest exec_request(Input& in, uint8_t& sel_out) {
    agent::ExecRequest req;
    const uint8_t sel = in.u8();
    const size_t args = sel & 3;
    for (size_t i = 0; i <= args; ++i) req.argv.push_back(c_string(in, 16));
    if (sel & 4) req.env.push_back("PATH=/bin");
    switch ((sel >> 3) & 3) {
      case 0: req.stdin_mode = proto::StdinMode::kNone; break;
      case 1:
        req.stdin_mode = proto::StdinMode::kData;
        req.stdin_data = in.string();
        break;
      default:
        req.stdin_mode = proto::StdinMode::kStream;
        req.stdin_data = std::string(in.u16() % 2048, 's');
        break;
    }
    req.pty = sel & 0x20;
    sel_out = sel;
    return req;
  }

  void exec(const agent::ExecRequest& req, bool signal_from_callback) {
    uint64_t out_bytes = 0;
    uint64_t err_bytes = 0;
    bool started = false;
    agent::ExecCallbacks cb;
    cb.on_started = [&](uint32_t) { started = true; };
    cb.on_stdout = [&](std::string_view s) {
      out_bytes += s.size();
      if (signal_from_callback) (void)client_->signal_running(15);
    };
    cb.on_stderr = [&](std::string_view s) { err_bytes += s.size(); };
    auto result = client_->exec(req, cb);
    if (result) {
      FUZZ_CHECK(result->stdout_bytes == out_bytes && result->stderr_bytes == err_bytes);
      FUZZ_CHECK(result->started == started);
    }
  }

  // What the host wrote since the last look: whole, well-formed frames of
  // host-to-agent types, and stdin only within the agent's credit.
  void check_host_frames() {
    std::string got;
    for (;;) {
      char buf[65536];
      const ssize_t n = ::recv(agent_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      host_bytes_.insert(host_bytes_.end(), buf, buf + n);
    }
    if (desynced_) return;
    proto::Status last;
    const size_t used = for_each_frame(host_bytes_, last, [&](const proto::FrameView& f) {
      FUZZ_CHECK(host_types().count(f.type) == 1);
      FUZZ_CHECK(check_frame_codec(f) == proto::Status::kOk);
      proto::StdinData d;
      if (proto::decode(f, d) == proto::Status::kOk) stdin_sent_ += d.data.size();
    });
    FUZZ_CHECK(last == proto::Status::kNeedMore);
    FUZZ_CHECK(stdin_sent_ <= stdin_granted_);
    host_bytes_.erase(host_bytes_.begin(), host_bytes_.begin() + static_cast<ptrdiff_t>(used));
    // A frame cut short: a send failed half-way (the agent's end is gone
    // for writing only, so this should not happen). Its stream is not
    // resynchronised; stop checking it.
    if (!host_bytes_.empty()) desynced_ = true;
  }

  UniqueFd agent_;
  std::optional<agent::AgentClient> client_;
  std::vector<uint8_t> host_bytes_;
  uint64_t stdin_granted_ = 0;
  uint64_t stdin_sent_ = 0;
  bool desynced_ = false;
  bool big_uploads_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  Session s;
  s.run(in);
  return 0;
}
