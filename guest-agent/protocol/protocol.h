// The husk agent protocol: message types, their fields and the frame codec.
// Both the guest agent and the host runtime (runtime/agent/) include this one
// header, so the two sides cannot drift apart. Framing is in wire.h.
//
// Conversation (host = H, agent = A), on each of up to 16 connections the
// agent serves at once (a 17th is closed): ids are the connection's own, and
// a job hears only the connection that started it and dies with it.
//   H->A Hello, A->H Hello. Majors must match; the agent answers a different
//        major with Error{EPROTONOSUPPORT} and closes. Nothing else is served
//        before the handshake.
//   Requests (own id each, chosen by the host, unique among live requests):
//     SetClock, SetHostname, Shutdown, Reseed,
//     ConfigureNetwork                       -> Ack | Error
//     WriteFile chunk... (same id, last set) -> Ack after the last | Error
//     ReadFile                               -> FileData... (last set) | Error
//     Stat                                   -> StatResult | Error
//     BootInfo                               -> BootReport | Error
//     Exec -> Started, Output..., Exited | ExecFailed | Error
//     An Exec whose argv and env do not fit one frame: ExecArgs parts
//     (same id) first, then the Exec; the agent puts the parts' items, in
//     order, before the Exec's own (exec_args.h). An Error for the id ends
//     it early (too large: E2BIG); nothing else is answered before the Exec.
//   Job-scoped frames carry the Exec's id and are never acknowledged; ones
//   for a job that has already ended are dropped (a benign race with exit):
//     H->A StdinData, StdinClose, Signal, Resize, Credit{stdout|stderr}
//     A->H Credit{stdin}
// Flow control: the agent sends Output for a stream only within the credit
// the host granted for it (Credit adds bytes) and reads the job's pipe no
// faster, so a slow host slows the job. Likewise the host sends StdinData
// only within stdin credit the agent granted. Nothing is dropped except past
// Limits::output_bytes: the agent then sends the bytes up to the cap, sets
// the truncated flag, kills the job's process tree and reports kOutputLimit.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "guest-agent/protocol/wire.h"

namespace husk::agent::proto {

inline constexpr uint16_t kVersionMajor = 1;
// Minor 1: Limits::open_files and file_size. Minor 2: ExecArgs.
// Minor 3: Limits::kill_signal and kill_grace_ms. Minor 4: Reseed.
// Minor 5: ConfigureNetwork. Minor 6: Resize. Minor 7: BootInfo.
inline constexpr uint16_t kVersionMinor = 7;
inline constexpr uint32_t kDefaultVsockPort = 52;

// Hello::features bits (what the agent can do on this boot).
inline constexpr uint64_t kFeatureCgroups = 1u << 0;  // memory/pids/cpu limits enforced
inline constexpr uint64_t kFeaturePty = 1u << 1;
inline constexpr uint64_t kFeatureConcurrentExec = 1u << 2;

// uid/gid value meaning "the agent's own" (no change).
inline constexpr uint32_t kKeepId = 0xffffffffu;

enum class MsgType : uint16_t {
  kHello = 1,
  // host -> agent
  kSetClock = 0x10,
  kSetHostname = 0x11,
  kShutdown = 0x12,
  kExec = 0x13,
  kStdinData = 0x14,
  kStdinClose = 0x15,
  kSignal = 0x16,
  kWriteFile = 0x17,
  kReadFile = 0x18,
  kStat = 0x19,
  kExecArgs = 0x1a,
  kReseed = 0x1b,
  kConfigureNetwork = 0x1c,
  kResize = 0x1d,
  kBootInfo = 0x1e,
  // both ways (stdout/stderr credit from the host, stdin credit from the agent)
  kCredit = 0x20,
  // agent -> host
  kAck = 0x40,
  kError = 0x41,
  kStarted = 0x42,
  kOutput = 0x43,
  kExited = 0x44,
  kExecFailed = 0x45,
  kFileData = 0x46,
  kStatResult = 0x47,
  kBootReport = 0x48,
};

enum class Stream : uint8_t { kStdin, kStdout, kStderr, kCount };
enum class StdinMode : uint8_t { kNone, kData, kStream, kCount };
// Why a job ended. When several limits fire, the first one the agent
// observed wins; memory and pids are read from the cgroup's event counters.
enum class ExitReason : uint8_t {
  kNormal, kWallTimeout, kCpuLimit, kMemoryLimit, kPidsLimit, kOutputLimit, kCount
};
// Where starting a job failed; the child reports the stage and errno
// through a close-on-exec pipe before it exits.
enum class ExecStage : uint8_t {
  kRequest, kCgroup, kPipe, kPty, kFork, kSetsid, kStdio, kRlimit, kOomScore,
  kChdir, kSetgroups, kSetgid, kSetuid, kExec, kCount
};

inline const char* stream_name(Stream s) {
  static const char* const kNames[] = {"stdin", "stdout", "stderr"};
  return s < Stream::kCount ? kNames[static_cast<int>(s)] : "?";
}
inline const char* reason_name(ExitReason r) {
  static const char* const kNames[] = {"normal",       "wall-timeout", "cpu-limit",
                                       "memory-limit", "pids-limit",   "output-limit"};
  return r < ExitReason::kCount ? kNames[static_cast<int>(r)] : "?";
}
inline const char* stage_name(ExecStage s) {
  static const char* const kNames[] = {"request", "cgroup",    "pipe",   "pty",    "fork",
                                       "setsid",  "stdio",     "rlimit", "oom-score",
                                       "chdir",   "setgroups", "setgid", "setuid", "exec"};
  return s < ExecStage::kCount ? kNames[static_cast<int>(s)] : "?";
}

// Each message lists its fields once, in wire order, in `fields`; Writer and
// Reader both walk that list, so encode and decode cannot disagree.
#define HUSK_MSG(Name) \
  static constexpr MsgType kType = MsgType::k##Name; \
  bool operator==(const Name&) const = default

struct Hello {
  HUSK_MSG(Hello);
  uint16_t major = kVersionMajor;
  uint16_t minor = kVersionMinor;
  uint64_t features = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.u16(s.major) && v.u16(s.minor) && v.u64(s.features); }
};

struct SetClock {
  HUSK_MSG(SetClock);
  uint64_t unix_ns = 0;  // CLOCK_REALTIME
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.u64(s.unix_ns); }
};

// Fresh host randomness for the guest's kernel: mixed into its entropy pool
// and its random number generator reseeded at once, so that VMs restored
// from one snapshot (which share the pool's state) draw different numbers
// from here on. The host sends it before any job runs.
struct Reseed {
  HUSK_MSG(Reseed);
  std::string entropy;  // 32 to 512 bytes
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.bytes(s.entropy); }
};

// The bounds of ConfigureNetwork's lists, enforced when it is decoded (and
// encoded); the rest of its checks are in network.h.
inline constexpr uint32_t kMaxNameservers = 8;
inline constexpr uint32_t kMaxHostEntries = 32;

// One line the agent adds to /etc/hosts.
struct HostEntry {
  bool operator==(const HostEntry&) const = default;
  std::string address;  // IPv4 or IPv6, as text
  std::string name;     // a hostname (network.h: valid_hostname)
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr(s.address) && v.cstr(s.name); }
};

// Configures the guest's network interface (virtio-net) and its resolver:
// the interface whose MAC is `mac` gets the MTU, the address and prefix, is
// brought up, and gets a default route via `gateway`; /etc/resolv.conf gets
// `nameservers` (none: a file without any, so nothing resolves through an
// old one) and /etc/hosts gets `hosts` after its own lines. The agent checks
// it with network_config_error (network.h) and answers Ack, or Error with
// the errno and the step that failed. Sending it again replaces the
// resolver and the hosts entries of the previous one.
struct ConfigureNetwork {
  HUSK_MSG(ConfigureNetwork);
  std::array<uint8_t, 6> mac{};
  // IPv4 addresses as numbers in host byte order: 10.0.2.15 is 0x0a00020f.
  uint32_t address = 0;
  uint8_t prefix_len = 0;  // 1 to 32
  uint32_t gateway = 0;    // 0: no default route
  uint32_t mtu = 0;        // 0: the kernel's (1500); else 68 to 65535
  std::vector<std::string> nameservers;  // IPv4, as text; at most kMaxNameservers
  std::vector<HostEntry> hosts;          // at most kMaxHostEntries
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    for (auto& b : s.mac) {
      if (!v.u8(b)) return false;
    }
    return v.u32(s.address) && v.u8(s.prefix_len) && v.u32(s.gateway) && v.u32(s.mtu) &&
           v.cstr_list(s.nameservers, kMaxNameservers) && v.list(s.hosts, kMaxHostEntries);
  }
};

struct SetHostname {
  HUSK_MSG(SetHostname);
  std::string name;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr(s.name); }
};

struct Shutdown {  // Ack, sync, reboot(RB_AUTOBOOT); a non-PID-1 agent exits
  HUSK_MSG(Shutdown);
  template <typename S, typename V>
  static bool fields(S&, V&) { return true; }
};

// Job limits; 0 means no limit.
struct Limits {
  bool operator==(const Limits&) const = default;
  uint64_t wall_ms = 0;       // kills the job's whole tree at the deadline
  uint64_t cpu_ms = 0;        // user+system CPU of the whole cgroup
  uint64_t memory_bytes = 0;  // cgroup memory.max (cgroups only)
  uint32_t pids = 0;          // cgroup pids.max (cgroups only)
  uint64_t output_bytes = 0;  // stdout + stderr together
  uint64_t open_files = 0;    // RLIMIT_NOFILE for the job, 0 none
  uint64_t file_size = 0;     // RLIMIT_FSIZE in bytes, 0 none
  // At the wall deadline: kill_signal (0: SIGKILL at once) to the job's
  // process group, then after kill_grace_ms SIGKILL to its whole tree.
  int32_t kill_signal = 0;
  uint64_t kill_grace_ms = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.u64(s.wall_ms) && v.u64(s.cpu_ms) && v.u64(s.memory_bytes) && v.u32(s.pids) &&
           v.u64(s.output_bytes) && v.u64(s.open_files) && v.u64(s.file_size) && v.i32(s.kill_signal) &&
           v.u64(s.kill_grace_ms);
  }
};

struct Exec {
  HUSK_MSG(Exec);
  std::vector<std::string> argv;  // argv[0] is searched in env's PATH
  std::vector<std::string> env;   // "NAME=value", exactly this environment
  std::string cwd;                // empty: "/"
  uint32_t uid = kKeepId;
  uint32_t gid = kKeepId;
  StdinMode stdin_mode = StdinMode::kNone;
  std::string stdin_data;  // kData only: the whole stdin, closed after it
  bool pty = false;        // stdin/stdout/stderr on a new pseudo-terminal
  uint16_t rows = 24;
  uint16_t cols = 80;
  Limits limits;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.cstr_list(s.argv) && v.cstr_list(s.env) && v.cstr(s.cwd) && v.u32(s.uid) &&
           v.u32(s.gid) && v.enum8(s.stdin_mode, uint8_t(StdinMode::kCount)) &&
           v.bytes(s.stdin_data) && v.boolean(s.pty) && v.u16(s.rows) && v.u16(s.cols) &&
           Limits::fields(s.limits, v);
  }
};

// argv and env items of an Exec too large for one frame (exec_args.h).
struct ExecArgs {
  HUSK_MSG(ExecArgs);
  std::vector<std::string> argv;
  std::vector<std::string> env;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr_list(s.argv) && v.cstr_list(s.env); }
};

struct StdinData {
  HUSK_MSG(StdinData);
  std::string data;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.bytes(s.data); }
};

struct StdinClose {  // on a PTY this sends the terminal's EOF character (^D)
  HUSK_MSG(StdinClose);
  template <typename S, typename V>
  static bool fields(S&, V&) { return true; }
};

struct Signal {  // to the job's whole process group
  HUSK_MSG(Signal);
  int32_t signo = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.i32(s.signo); }
};

// The job's terminal size (an Exec with pty): the agent sets it on the
// job's pseudo-terminal, whose kernel sends SIGWINCH to its foreground
// process group. Ignored for a job without one. Protocol 1.6.
struct Resize {
  HUSK_MSG(Resize);
  uint16_t rows = 0;
  uint16_t cols = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.u16(s.rows) && v.u16(s.cols); }
};

struct Credit {
  HUSK_MSG(Credit);
  Stream stream = Stream::kStdout;
  uint32_t bytes = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.enum8(s.stream, uint8_t(Stream::kCount)) && v.u32(s.bytes);
  }
};

// One chunk of a file upload. Chunks of one upload share the request id and
// arrive in order (offset = bytes sent before); they go to a temporary file
// beside `path` that is renamed over it after the last chunk, so readers
// never see a half-written file.
struct WriteFile {
  HUSK_MSG(WriteFile);
  std::string path;
  uint32_t mode = 0644;
  uint32_t uid = kKeepId;
  uint32_t gid = kKeepId;
  uint64_t offset = 0;
  bool last = false;
  bool mkdirs = false;  // create missing parent folders (mode 0755)
  std::string data;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.cstr(s.path) && v.u32(s.mode) && v.u32(s.uid) && v.u32(s.gid) && v.u64(s.offset) &&
           v.boolean(s.last) && v.boolean(s.mkdirs) && v.bytes(s.data);
  }
};

// Download: FileData chunks follow, the agent pacing them by its socket.
// A file longer than max_bytes (0: no limit) ends in Error{EFBIG}.
struct ReadFile {
  HUSK_MSG(ReadFile);
  std::string path;
  uint64_t max_bytes = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr(s.path) && v.u64(s.max_bytes); }
};

struct Stat {
  HUSK_MSG(Stat);
  std::string path;
  bool follow_symlinks = true;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr(s.path) && v.boolean(s.follow_symlinks); }
};

struct Ack {
  HUSK_MSG(Ack);
  template <typename S, typename V>
  static bool fields(S&, V&) { return true; }
};

// Ends the request with the same id. err is a Linux errno (both sides are
// Linux on x86_64, so the numbers agree).
struct Error {
  HUSK_MSG(Error);
  int32_t err = 0;
  std::string message;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.i32(s.err) && v.bytes(s.message); }
};

struct Started {
  HUSK_MSG(Started);
  uint32_t pid = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.u32(s.pid); }
};

struct Output {
  HUSK_MSG(Output);
  Stream stream = Stream::kStdout;
  std::string data;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.enum8(s.stream, uint8_t(Stream::kCount)) && v.bytes(s.data);
  }
};

// Output with its data as a view, not a copy: encoded from the agent's read
// buffer, decoded in place from the host's receive buffer (valid until the
// next frame is read). The wire bytes are Output's.
struct OutputView {
  static constexpr MsgType kType = MsgType::kOutput;
  Stream stream = Stream::kStdout;
  std::span<const uint8_t> data;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.enum8(s.stream, uint8_t(Stream::kCount)) && v.bytes(s.data);
  }
};

// The start of an Output frame whose `size` data bytes follow it: the agent
// reads a job's pipe straight into the buffer after these bytes. Together
// they are the frame append_frame makes of Output{stream, data}.
inline constexpr size_t kOutputHeaderSize = kHeaderSize + 1 + 4;  // stream, data length
[[nodiscard]] inline Status put_output_header(std::span<uint8_t, kOutputHeaderSize> out, uint32_t id,
                                              Stream stream, size_t size) {
  if (size > kMaxFrameBody - (kOutputHeaderSize - kLengthSize)) return Status::kTooLarge;
  size_t at = 0;
  auto put = [&](uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out[at++] = static_cast<uint8_t>(v >> (8 * i));
  };
  // Little-endian, in wire order: 4 + 2 + 4 + 1 + 4 = kOutputHeaderSize.
  put(kOutputHeaderSize - kLengthSize + size, 4);
  put(static_cast<uint16_t>(MsgType::kOutput), 2);
  put(id, 4);
  put(static_cast<uint8_t>(stream), 1);
  put(size, 4);
  return Status::kOk;
}

// The final event of a started job, sent after all its Output.
struct Exited {
  HUSK_MSG(Exited);
  int32_t exit_code = -1;  // -1 when killed by a signal
  int32_t signal = 0;      // the terminating signal, 0 when it exited
  uint64_t cpu_user_us = 0;
  uint64_t cpu_sys_us = 0;
  uint64_t peak_memory_bytes = 0;
  uint64_t wall_us = 0;
  ExitReason reason = ExitReason::kNormal;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  bool pids_limit_hit = false;  // a fork in the job failed on pids.max
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.i32(s.exit_code) && v.i32(s.signal) && v.u64(s.cpu_user_us) &&
           v.u64(s.cpu_sys_us) && v.u64(s.peak_memory_bytes) && v.u64(s.wall_us) &&
           v.enum8(s.reason, uint8_t(ExitReason::kCount)) && v.boolean(s.stdout_truncated) &&
           v.boolean(s.stderr_truncated) && v.boolean(s.pids_limit_hit);
  }
};

struct ExecFailed {  // the final event of a job that never ran
  HUSK_MSG(ExecFailed);
  ExecStage stage = ExecStage::kExec;
  int32_t err = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.enum8(s.stage, uint8_t(ExecStage::kCount)) && v.i32(s.err);
  }
};

struct FileData {
  HUSK_MSG(FileData);
  uint64_t offset = 0;
  bool last = false;
  std::string data;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.u64(s.offset) && v.boolean(s.last) && v.bytes(s.data); }
};

struct StatResult {
  HUSK_MSG(StatResult);
  uint32_t mode = 0;  // st_mode, file type bits included
  uint64_t size = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  template <typename S, typename V>
  static bool fields(S& s, V& v) {
    return v.u32(s.mode) && v.u64(s.size) && v.u32(s.uid) && v.u32(s.gid) && v.i64(s.mtime_ns);
  }
};

// The guest's boot, as its own clock saw it: the host's timeline splits
// the time from kernel entry to agent ready with these.
struct BootInfo {
  HUSK_MSG(BootInfo);
  template <typename S, typename V>
  static bool fields(S&, V&) { return true; }
};

// One moment of the boot: a name (guest-agent/src/boot_marks.cpp lists
// them) and the guest's CLOCK_BOOTTIME then, in microseconds (the kernel's
// printk clock for the kernel's own moments).
struct BootMark {
  std::string name;
  uint64_t at_us = 0;
  bool operator==(const BootMark&) const = default;
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.cstr(s.name) && v.u64(s.at_us); }
};
inline constexpr uint32_t kMaxBootMarks = 32;

struct BootReport {
  HUSK_MSG(BootReport);
  std::vector<BootMark> marks;  // in the order they happened
  template <typename S, typename V>
  static bool fields(S& s, V& v) { return v.list(s.marks, kMaxBootMarks); }
};

#undef HUSK_MSG

// Every message, for code (and tests) that must cover all of them.
using AllMessages = std::tuple<Hello, SetClock, Reseed, ConfigureNetwork, SetHostname, Shutdown, Exec, ExecArgs,
                               StdinData, StdinClose, Signal, Resize, Credit, WriteFile, ReadFile, Stat, Ack,
                               Error, Started, Output, Exited, ExecFailed, FileData, StatResult, BootInfo,
                               BootReport>;

inline bool is_known_type(uint16_t type) {
  return std::apply([type](auto... m) { return ((uint16_t(decltype(m)::kType) == type) || ...); },
                    AllMessages{});
}

// Appends one frame to `out`. kTooLarge (and `out` unchanged) when the
// message does not fit kMaxFrameBody.
template <typename M>
[[nodiscard]] Status append_frame(std::vector<uint8_t>& out, uint32_t id, const M& msg) {
  const size_t start = out.size();
  out.resize(start + kLengthSize);
  Writer w(out);
  w.u16(static_cast<uint16_t>(M::kType));
  w.u32(id);
  const bool ok = M::fields(msg, w);
  const size_t body = out.size() - start - kLengthSize;
  if (!ok || body > kMaxFrameBody) {
    out.resize(start);
    return Status::kTooLarge;
  }
  for (size_t i = 0; i < kLengthSize; ++i) out[start + i] = static_cast<uint8_t>(body >> (8 * i));
  return Status::kOk;
}

// Finds the first frame in `in`. kNeedMore: read more bytes. kTooLarge or
// kMalformed (a length too short for the header): the stream cannot be
// resynchronised, close it. kUnknownType: `out` is filled, skip out.size.
[[nodiscard]] inline Status peek_frame(std::span<const uint8_t> in, FrameView& out) {
  if (in.size() < kLengthSize) return Status::kNeedMore;
  const uint32_t body = load_le32(in.data());
  if (body > kMaxFrameBody) return Status::kTooLarge;
  if (body < kHeaderSize - kLengthSize) return Status::kMalformed;
  if (in.size() - kLengthSize < body) return Status::kNeedMore;
  Reader r(in.subspan(kLengthSize, 6));
  r.u16(out.type);
  r.u32(out.id);
  // body >= 6 and in holds 4 + body bytes, so this subspan is in range.
  out.payload = in.subspan(kHeaderSize, body - 6);
  out.size = kLengthSize + body;
  return is_known_type(out.type) ? Status::kOk : Status::kUnknownType;
}

// Decodes a frame's payload as M: the whole payload must be consumed.
template <typename M>
[[nodiscard]] Status decode(const FrameView& frame, M& out) {
  if (frame.type != static_cast<uint16_t>(M::kType)) return Status::kWrongType;
  M msg;
  Reader r(frame.payload);
  if (!M::fields(msg, r) || !r.ok() || !r.at_end()) return Status::kMalformed;
  out = std::move(msg);
  return Status::kOk;
}

}  // namespace husk::agent::proto
