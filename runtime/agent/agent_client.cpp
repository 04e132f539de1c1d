// AgentClient: connecting, the handshake and the small requests (clock,
// reseed, hostname, network, files, stat, shutdown). exec() is in agent_exec.cpp.
#include "runtime/agent/agent_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "guest-agent/protocol/network.h"

namespace husk::agent {

namespace {

// Agent text goes into host error messages and logs: keep it printable and
// short so a hostile guest cannot forge log lines or flood them.
std::string sanitize(const std::string& text) {
  std::string out = text.substr(0, 512);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

// Decodes M from a frame of request `id`; the agent's Error becomes an
// error value, any other message is a protocol violation.
template <typename M>
Result<M> expect(const proto::FrameView& frame) {
  if (frame.type == uint16_t(proto::MsgType::kError)) return agent_error(frame);
  M msg;
  if (const proto::Status s = proto::decode(frame, msg); s != proto::Status::kOk) {
    return Unexpected(Error{EPROTO, "agent: " + std::string(proto::status_name(s)) +
                                        " (message type " + std::to_string(frame.type) + ")"});
  }
  return msg;
}

}  // namespace

Unexpected about(const std::string& what, Error e) {
  // "agent: X" becomes "agent: WHAT: X", so the message says which call failed.
  constexpr std::string_view kPrefix = "agent: ";
  const std::string_view m = e.message;
  e.message = std::string(kPrefix) + what + ": " + std::string(m.substr(m.rfind(kPrefix, 0) == 0 ? kPrefix.size() : 0));
  return Unexpected(std::move(e));
}

Unexpected agent_error(const proto::FrameView& frame) {
  proto::Error e;
  if (proto::decode(frame, e) != proto::Status::kOk) {
    return Unexpected(Error{EPROTO, "agent: malformed Error message"});
  }
  return Unexpected(Error{e.err, "agent: " + sanitize(e.message)});
}

Result<AgentClient> AgentClient::connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return Unexpected(Error{ENAMETOOLONG, "agent: socket path too long: " + path});
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("agent: socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("agent: connect " + path);
  }
  return AgentClient(std::move(fd));
}

Result<AgentClient> AgentClient::connect_vsock_uds(const std::string& socket_path, uint32_t port,
                                                   std::chrono::milliseconds timeout) {
  const Deadline deadline = Deadline::after(timeout);
  HUSK_TRY_ASSIGN(AgentClient client, connect_unix(socket_path));
  const std::string request = "CONNECT " + std::to_string(port) + "\n";
  // Read as bytes so the handshake goes through the same bounded writer.
  HUSK_TRY(client.stream_.write_all(
      std::span(reinterpret_cast<const uint8_t*>(request.data()), request.size()), deadline));
  // One byte at a time so that nothing after the newline is consumed here;
  // the deadline is for the whole reply.
  std::string reply;
  while (reply.size() < 64 && (reply.empty() || reply.back() != '\n')) {
    const int rc = poll_until(client.fd(), POLLIN, deadline);
    if (rc < 0) return fail_errno("agent: poll");
    if (rc == 0) {
      return Unexpected(Error{ETIMEDOUT, fmt::format("agent: vsock CONNECT {}: no reply within {} ms", port,
                                                     timeout.count())});
    }
    char c;
    const ssize_t n = ::read(client.fd(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("agent: read vsock handshake");
    if (n == 0) {
      return Unexpected(Error{ECONNREFUSED, "agent: vsock port " + std::to_string(port) +
                                                ": connection refused (no listener?)"});
    }
    reply.push_back(c);
  }
  if (reply.rfind("OK ", 0) != 0 || reply.back() != '\n') {
    return Unexpected(Error{ECONNREFUSED, "agent: vsock CONNECT " + std::to_string(port) +
                                              ": unexpected reply '" + sanitize(reply) + "'"});
  }
  return client;
}

std::chrono::milliseconds AgentClient::allowance(uint64_t bytes) const {
  // bytes / rate in ms, in KiB so that no u64 overflows.
  return call_timeout_ + std::chrono::milliseconds((bytes >> 10) * 1000 / (kMinTransferRate >> 10));
}

AgentClient::Budget AgentClient::budget(uint64_t bytes) const {
  const std::chrono::milliseconds length = allowance(bytes);
  return Budget{Deadline::after(length), length};
}

Result<void> AgentClient::write(const char* what, std::span<const uint8_t> frames, Deadline deadline) {
  auto sent = stream_.write_all(frames, deadline);
  if (!sent) {
    if (sent.error().code == ETIMEDOUT) stream_.mark_broken(sent.error().message);
    return about(what, sent.error());
  }
  return {};
}

Result<proto::FrameView> AgentClient::await(uint32_t id, const Budget& b, const std::string& what) {
  for (;;) {
    auto frame = stream_.next(b.deadline);
    if (!frame) return about(what, frame.error());
    if (!*frame) {
      const std::string why = fmt::format("agent: {}: no answer within {} ms (the guest agent does not respond)",
                                          what, b.length.count());
      stream_.mark_broken(why);
      return Unexpected(Error{ETIMEDOUT, why});
    }
    if ((*frame)->id == id) return **frame;
    // Another id: the tail of a request abandoned after an error. Skipped.
  }
}

Result<void> AgentClient::await_ack(uint32_t id, const Budget& b, const char* what) {
  HUSK_TRY_ASSIGN(const proto::FrameView frame, await(id, b, what));
  HUSK_TRY(expect<proto::Ack>(frame));
  return {};
}

Result<proto::Hello> AgentClient::hello() {
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("Hello", id, proto::Hello{}, b.deadline));
  HUSK_TRY_ASSIGN(const proto::FrameView frame, await(id, b, "Hello"));
  HUSK_TRY_ASSIGN(proto::Hello agent, expect<proto::Hello>(frame));
  if (agent.major != proto::kVersionMajor) {
    return Unexpected(Error{EPROTONOSUPPORT,
                            "agent speaks protocol " + std::to_string(agent.major) + "." +
                                std::to_string(agent.minor) + ", husk speaks " +
                                std::to_string(proto::kVersionMajor) + "." +
                                std::to_string(proto::kVersionMinor)});
  }
  agent_minor_ = agent.minor;
  return agent;
}

Result<void> AgentClient::set_clock(uint64_t unix_ns) {
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("SetClock", id, proto::SetClock{unix_ns}, b.deadline));
  return await_ack(id, b, "SetClock");
}

Result<void> AgentClient::reseed() {
  // From /dev/urandom with open and read: the calls husk's main thread may
  // make under its filter anyway (getrandom is not among them).
  std::string entropy(64, '\0');
  UniqueFd urandom(::open("/dev/urandom", O_RDONLY | O_CLOEXEC));
  if (!urandom || ::read(urandom.get(), entropy.data(), entropy.size()) != static_cast<ssize_t>(entropy.size())) {
    return fail_errno("read /dev/urandom for the guest's reseed");
  }
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("Reseed", id, proto::Reseed{std::move(entropy)}, b.deadline));
  return await_ack(id, b, "Reseed");
}

Result<void> AgentClient::set_hostname(const std::string& name) {
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("SetHostname", id, proto::SetHostname{name}, b.deadline));
  return await_ack(id, b, "SetHostname");
}

Result<void> AgentClient::configure_network(const proto::ConfigureNetwork& config) {
  if (const std::string bad = proto::network_config_error(config); !bad.empty()) {
    return Unexpected(Error{EINVAL, "agent: ConfigureNetwork: " + bad});
  }
  if (agent_minor_ < 5) {
    return Unexpected(Error{EPROTONOSUPPORT,
                            fmt::format("agent: ConfigureNetwork: the guest agent speaks protocol {}.{}, networking "
                                        "needs {}.5 (an older husk-agent in the guest image?)",
                                        proto::kVersionMajor, agent_minor_, proto::kVersionMajor)});
  }
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("ConfigureNetwork", id, config, b.deadline));
  return await_ack(id, b, "ConfigureNetwork");
}

Result<void> AgentClient::signal_running(int signo) {
  if (running_id_ == 0) return fail("agent: no job is running");
  return send("Signal", running_id_, proto::Signal{signo}, budget().deadline);
}

Result<void> AgentClient::resize_running(uint16_t rows, uint16_t cols) {
  if (running_id_ == 0) return fail("agent: no job is running");
  if (agent_minor_ < 6) {
    return Unexpected(Error{EPROTONOSUPPORT,
                            fmt::format("agent: Resize: the guest agent speaks protocol {}.{}, a terminal resize "
                                        "needs {}.6 (an older husk-agent in the guest image?)",
                                        proto::kVersionMajor, agent_minor_, proto::kVersionMajor)});
  }
  return send("Resize", running_id_, proto::Resize{rows, cols}, budget().deadline);
}

Result<void> AgentClient::write_file(const std::string& path, std::string_view data, uint32_t mode,
                                     bool mkdirs, uint32_t uid, uint32_t gid) {
  const uint32_t id = next_id_++;
  // One deadline for the whole upload and its Ack.
  const Budget b = budget(data.size());
  size_t offset = 0;
  for (;;) {
    const size_t n = std::min(data.size() - offset, proto::kMaxChunk);
    proto::WriteFile chunk{path, mode, uid, gid, offset, offset + n == data.size(), mkdirs,
                           std::string(data.substr(offset, n))};
    HUSK_TRY(send("WriteFile", id, chunk, b.deadline));
    offset += n;
    if (chunk.last) break;
    // An early Error (say, the folder is missing) ends the upload now
    // rather than after every chunk has been sent in vain.
    auto early = stream_.next(Deadline::after_ms(0));
    if (!early) return about("WriteFile", early.error());
    if (*early && (*early)->id == id) {
      HUSK_TRY(expect<proto::Ack>(**early));
      return fail("agent: write_file acknowledged before its last chunk");
    }
  }
  return await_ack(id, b, "WriteFile");
}

Result<std::string> AgentClient::read_file(const std::string& path, uint64_t max_bytes) {
  const uint32_t id = next_id_++;
  const auto started = Deadline::Clock::now();
  HUSK_TRY(send("ReadFile", id, proto::ReadFile{path, max_bytes}, budget().deadline));
  std::string out;
  for (;;) {
    // The size is the guest's to say: the deadline grows with what has
    // come, so a guest must keep up kMinTransferRate to keep it open; and
    // each chunk must come within call_timeout() of the one before.
    const std::chrono::milliseconds length = allowance(out.size());
    const Budget whole{Deadline::at(started + length), length};
    const Budget chunk_budget = budget();
    const Budget& b = whole.deadline.time() <= chunk_budget.deadline.time() ? whole : chunk_budget;
    HUSK_TRY_ASSIGN(const proto::FrameView frame, await(id, b, "ReadFile"));
    HUSK_TRY_ASSIGN(proto::FileData chunk, expect<proto::FileData>(frame));
    // The guest picks offsets and sizes: check both before appending so a
    // hostile agent can neither reorder data nor exceed the caller's cap.
    if (chunk.offset != out.size()) return Unexpected(Error{EPROTO, "agent: file chunk out of order"});
    if (max_bytes != 0 && out.size() + chunk.data.size() > max_bytes) {
      return Unexpected(Error{EFBIG, "agent: " + path + " is larger than " +
                                         std::to_string(max_bytes) + " bytes"});
    }
    out += chunk.data;
    if (chunk.last) return out;
  }
}

Result<FileStat> AgentClient::stat(const std::string& path, bool follow_symlinks) {
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("Stat", id, proto::Stat{path, follow_symlinks}, b.deadline));
  HUSK_TRY_ASSIGN(const proto::FrameView frame, await(id, b, "Stat"));
  return expect<proto::StatResult>(frame);
}

Result<std::vector<proto::BootMark>> AgentClient::boot_info() {
  if (agent_minor_ < 7) {
    return Unexpected(Error{EPROTONOSUPPORT,
                            fmt::format("agent: BootInfo: the guest agent speaks protocol {}.{}, boot marks "
                                        "need {}.7 (an older husk-agent in the guest image?)",
                                        proto::kVersionMajor, agent_minor_, proto::kVersionMajor)});
  }
  const uint32_t id = next_id_++;
  const Budget b = budget();
  HUSK_TRY(send("BootInfo", id, proto::BootInfo{}, b.deadline));
  HUSK_TRY_ASSIGN(const proto::FrameView frame, await(id, b, "BootInfo"));
  HUSK_TRY_ASSIGN(proto::BootReport report, expect<proto::BootReport>(frame));
  // The guest's words: names become JSON keys and times become numbers in
  // the result, so only short printable names in time order pass.
  uint64_t last = 0;
  for (const proto::BootMark& m : report.marks) {
    const bool printable = !m.name.empty() && m.name.size() <= 32 &&
                           std::all_of(m.name.begin(), m.name.end(), [](char ch) {
                             return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
                           });
    if (!printable || m.at_us < last) return Unexpected(Error{EPROTO, "agent: BootInfo: a malformed boot mark"});
    last = m.at_us;
  }
  return std::move(report.marks);
}

Result<void> AgentClient::shutdown() {
  const uint32_t id = next_id_++;
  const Budget b = budget();
  auto sent = send("Shutdown", id, proto::Shutdown{}, b.deadline);
  // The VM may be gone before the request or the Ack: that is the shutdown too.
  if (!sent && (sent.error().code == ECONNRESET || sent.error().code == EPIPE) && !stream_.broken()) return {};
  HUSK_TRY(sent);
  auto ack = await_ack(id, b, "Shutdown");
  if (!ack && ack.error().code == ECONNRESET) return {};
  return ack;
}

}  // namespace husk::agent
