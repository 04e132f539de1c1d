// libFuzzer target for what host clients write on a vsock device's Unix
// socket (Firecracker's scheme: "CONNECT <port>\n", then "OK <local>\n" and
// a byte stream): CONNECT lines, garbage, partial and over-long lines,
// payload in the same write as the line, clients that hang up half-way or
// never read. The guest side is an honest driver script: it accepts or
// refuses each REQUEST as the input says, reads what arrives, sends data
// back, shuts down or resets connections, and advertises a receive window
// it updates only when the input says so.
//
// Checked, besides no crash, leak, hang or fd leak:
//   - a client gets bytes only after a well-formed CONNECT line, and they
//     start with "OK <n>\n" where n is the port of a REQUEST the guest
//     accepted for the port the client asked for;
//   - what a client reads after that line is a prefix of what the guest
//     sent on that connection, and what the guest receives is a prefix of
//     what a client asking for that port wrote after its line;
//   - the device never has more bytes in flight to the guest than the
//     guest's last advertised window (buf_alloc, fwd_cnt) allows;
//   - it never answers a REQUEST with RESPONSE here (the guest sends none).
//
// Input: u8 setup (bit 0 EVENT_IDX, bit 1 tight budgets), then ops until the
// input ends (see run_op).
// Build and run: `make fuzz`.
#include <charconv>
#include <optional>

#include "tests/fuzz/vsock_harness.h"

namespace {

using namespace husk;
using namespace husk::fuzz;

constexpr size_t kMaxOps = 256;
constexpr size_t kMaxClients = 6;
constexpr size_t kMaxConnectLine = 32;  // vsock_host.cpp's bound, without the newline

// The port of a CONNECT line as the device must read it: the bytes before
// the first newline are "CONNECT " and a decimal u32, nothing else.
std::optional<uint32_t> connect_port(const std::string& written) {
  const size_t nl = written.find('\n');
  if (nl == std::string::npos || nl > kMaxConnectLine) return std::nullopt;
  const std::string line = written.substr(0, nl);
  const std::string prefix = "CONNECT ";
  if (line.rfind(prefix, 0) != 0) return std::nullopt;
  uint32_t port = 0;
  const char* end = line.data() + line.size();
  auto [ptr, ec] = std::from_chars(line.data() + prefix.size(), end, port);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return port;
}

struct Client {
  UniqueFd fd;
  std::string written;
  std::string received;
  [[nodiscard]] std::string payload() const {
    const size_t nl = written.find('\n');
    return nl == std::string::npos ? std::string() : written.substr(nl + 1);
  }
};

// One connection as the guest sees it, kept for the whole run.
struct GuestConn {
  uint32_t guest_port = 0;
  bool accepted = false;
  bool open = false;          // neither side has reset it
  bool device_reset = false;  // the device sent RST: nothing may follow
  bool device_shut = false;   // the device sent SHUTDOWN(send): no more data
  uint32_t buf_alloc = 0;
  uint64_t fwd_advertised = 0;  // consumed bytes, as last told to the device
  std::string received;         // RW payload from the host, in order
  std::string sent;             // RW payload to the host, in order
};

bool is_prefix(const std::string& part, const std::string& whole) {
  return part.size() <= whole.size() && whole.compare(0, part.size(), part) == 0;
}

class Session {
 public:
  // The guest starts with receive buffers, as a booted one has them.
  Session(EventLoop loop, uint8_t setup) : h_(scratch().file("h.sock"), std::move(loop), setup & 1, setup & 2) {
    h_.add_rx_buffers(16, 4096, 0, 0, true);
  }

  void run_op(Input& in) {
    const uint8_t op = in.u8() % 10;
    FUZZ_TRACE("op %u\n", op);
    switch (op) {
      case 0:
        if (clients_.size() < kMaxClients) {
          Client c;
          c.fd = connect_unix(h_.uds());
          if (c.fd) clients_.push_back(std::move(c));
        }
        break;
      case 1:
        if (Client* c = pick(in)) write(*c, in.bytes(in.u8()));
        break;
      case 2:
        if (Client* c = pick(in)) {
          const uint8_t sel = in.u8();
          const uint32_t ports[] = {52, 1234, 0, 4294967295u};
          const std::string port = (sel & 4) ? std::to_string(in.u32()) : std::to_string(ports[sel & 3]);
          const std::string line = "CONNECT " + port + ((sel & 8) ? "" : "\n");
          write(*c, std::span(reinterpret_cast<const uint8_t*>(line.data()), line.size()));
        }
        break;
      case 3:
        if (Client* c = pick(in)) {
          const uint8_t how = in.u8() % 3;
          if (how == 0) {
            c->fd.reset();
          } else {
            ::shutdown(c->fd.get(), how == 1 ? SHUT_WR : SHUT_RD);
          }
        }
        break;
      case 4:
        if (Client* c = pick(in)) read(*c);
        break;
      case 5: h_.poll(); break;
      case 6: guest_step(in); break;
      case 7: guest_send(in); break;
      case 8: guest_control(in); break;
      case 9: {
        const uint32_t sizes[] = {4096, 64, 45, 300};
        h_.add_rx_buffers(in.u8() % 9, sizes[in.u8() % 4], in.u8(), 20, true);
        break;
      }
    }
    FUZZ_CHECK(h_.device().connection_count() <= h_.budgets().max_connections);
  }

  void finish(Input& in) {
    h_.poll();
    guest_step(in);
    h_.poll();
    for (Client& c : clients_) {
      if (c.fd) read(c);
    }
    guest_step(in);
    for (const auto& [port, conn] : conns_) check_guest_received(port, conn);
  }

 private:
  Client* pick(Input& in) {
    if (clients_.empty()) return nullptr;
    Client& c = clients_[in.u8() % clients_.size()];
    return c.fd ? &c : nullptr;
  }

  void write(Client& c, std::span<const uint8_t> data) {
    const ssize_t n = ::send(c.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) c.written.append(reinterpret_cast<const char*>(data.data()), static_cast<size_t>(n));
  }

  void read(Client& c) {
    (void)drain(c.fd.get(), c.received);
    FUZZ_TRACE("  client has read %zu bytes\n", c.received.size());
    check_client(c);
  }

  // What a client has read so far, against what it wrote and the guest did.
  void check_client(const Client& c) {
    if (c.received.empty()) return;
    const std::optional<uint32_t> asked = connect_port(c.written);
    FUZZ_CHECK(asked.has_value());  // no bytes without a well-formed CONNECT line
    const size_t nl = c.received.find('\n');
    if (nl == std::string::npos) {
      FUZZ_CHECK(c.received.size() < 16 && is_prefix(c.received.substr(0, 3), "OK "));
      return;
    }
    const std::string line = c.received.substr(0, nl);
    FUZZ_CHECK(line.rfind("OK ", 0) == 0);
    uint32_t local = 0;
    auto [ptr, ec] = std::from_chars(line.data() + 3, line.data() + line.size(), local);
    FUZZ_CHECK(ec == std::errc() && ptr == line.data() + line.size());
    auto it = conns_.find(local);
    FUZZ_CHECK(it != conns_.end() && it->second.accepted && it->second.guest_port == *asked);
    FUZZ_CHECK(is_prefix(c.received.substr(nl + 1), it->second.sent));
  }

  // What the guest received on a connection came from a client that asked
  // for that port, in order and without gaps.
  void check_guest_received(uint32_t local, const GuestConn& conn) {
    if (conn.received.empty()) return;
    for (const Client& c : clients_) {
      if (connect_port(c.written) != conn.guest_port) continue;
      // A client that read its OK line names its connection for certain.
      if (c.received.rfind("OK " + std::to_string(local) + "\n", 0) == 0 ||
          c.received.find('\n') == std::string::npos) {
        if (is_prefix(conn.received, c.payload())) return;
      }
    }
    std::fprintf(stderr, "guest port %u, host port %u: %zu bytes from no client\n", conn.guest_port, local,
                 conn.received.size());
    FUZZ_CHECK(false && "the guest received bytes no client wrote");
  }

  void send_on(uint32_t local, GuestConn& conn, uint16_t op, std::span<const uint8_t> data, uint32_t flags = 0) {
    // Every packet carries the window; what was consumed is advertised now.
    conn.fwd_advertised = conn.received.size();
    const auto hdr = VsockHarness::header(op, conn.guest_port, local, static_cast<uint32_t>(data.size()),
                                          conn.buf_alloc, static_cast<uint32_t>(conn.fwd_advertised), flags);
    if (!h_.send(hdr, data, {}, false, true)) {
      h_.take_tx_used();
      (void)h_.send(hdr, data, {}, false, true);
    }
  }

  // The guest's receive path: answer REQUESTs, take data, follow resets.
  void guest_step(Input& in) {
    const uint8_t decisions = in.u8();
    const uint8_t windows = in.u8();
    unsigned request = 0;
    const std::vector<RxPacket> packets = h_.receive();
    for (const RxPacket& p : packets) {
      const uint32_t local = p.hdr.src_port;
      auto it = conns_.find(local);
      switch (p.hdr.op) {
        case VIRTIO_VSOCK_OP_REQUEST: {
          // A host port is never reused while its connection lives.
          FUZZ_CHECK(it == conns_.end() || !it->second.open);
          GuestConn& conn = conns_[local];
          conn = GuestConn{};
          conn.guest_port = p.hdr.dst_port;
          const uint32_t allocs[] = {65536, 4096, 512, 1};
          conn.buf_alloc = allocs[(windows >> (2 * (request % 4))) & 3];
          const bool accept = ((decisions >> (request % 8)) & 1) == 0;
          ++request;
          if (accept) {
            conn.accepted = conn.open = true;
            send_on(local, conn, VIRTIO_VSOCK_OP_RESPONSE, {});
          } else {
            send_on(local, conn, VIRTIO_VSOCK_OP_RST, {});
          }
          break;
        }
        case VIRTIO_VSOCK_OP_RESPONSE:
          FUZZ_CHECK(false && "a RESPONSE to a REQUEST the guest never sent");
          break;
        case VIRTIO_VSOCK_OP_RW: {
          // Only on a connection the guest accepted (it may have reset it
          // since: data can cross the RST), before the device's own RST or
          // SHUTDOWN, and within the window the guest gave.
          FUZZ_CHECK(it != conns_.end() && it->second.accepted);
          GuestConn& conn = it->second;
          FUZZ_CHECK(!conn.device_reset && !conn.device_shut);
          conn.received += p.payload;
          FUZZ_CHECK(conn.received.size() - conn.fwd_advertised <= conn.buf_alloc);
          break;
        }
        case VIRTIO_VSOCK_OP_RST:
          if (it != conns_.end()) {
            it->second.open = false;
            it->second.device_reset = true;
          }
          break;
        case VIRTIO_VSOCK_OP_SHUTDOWN:
          if (it != conns_.end() && (p.hdr.flags & VIRTIO_VSOCK_SHUTDOWN_SEND)) it->second.device_shut = true;
          break;
        case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
          if (it != conns_.end() && it->second.open) send_on(local, it->second, VIRTIO_VSOCK_OP_CREDIT_UPDATE, {});
          break;
        default:  // CREDIT_UPDATE: nothing to answer
          break;
      }
    }
    // Give the buffers back, and the window too when the input says so.
    if (!packets.empty()) h_.add_rx_buffers(packets.size(), 4096, 0, 0, true);
    if (decisions & 0x80) {
      for (auto& [local, conn] : conns_) {
        if (conn.open && conn.received.size() != conn.fwd_advertised) {
          send_on(local, conn, VIRTIO_VSOCK_OP_CREDIT_UPDATE, {});
        }
      }
    }
    h_.take_tx_used();
  }

  GuestConn* pick_conn(Input& in, uint32_t& local) {
    std::vector<uint32_t> open;
    for (const auto& [port, conn] : conns_) {
      if (conn.open) open.push_back(port);
    }
    if (open.empty()) return nullptr;
    local = open[in.u8() % open.size()];
    return &conns_[local];
  }

  void guest_send(Input& in) {
    uint32_t local = 0;
    GuestConn* conn = pick_conn(in, local);
    if (conn == nullptr) return;
    const auto data = in.bytes(1 + in.u8());
    if (data.empty()) return;
    conn->sent.append(reinterpret_cast<const char*>(data.data()), data.size());
    send_on(local, *conn, VIRTIO_VSOCK_OP_RW, data);
  }

  void guest_control(Input& in) {
    uint32_t local = 0;
    GuestConn* conn = pick_conn(in, local);
    if (conn == nullptr) return;
    switch (in.u8() % 4) {
      case 0: send_on(local, *conn, VIRTIO_VSOCK_OP_SHUTDOWN, {}, 1 + in.u8() % 3); break;
      case 1:
        send_on(local, *conn, VIRTIO_VSOCK_OP_RST, {});
        conn->open = false;
        break;
      case 2: send_on(local, *conn, VIRTIO_VSOCK_OP_CREDIT_UPDATE, {}); break;
      default: send_on(local, *conn, VIRTIO_VSOCK_OP_CREDIT_REQUEST, {}); break;
    }
  }

  VsockHarness h_;
  std::vector<Client> clients_;
  std::map<uint32_t, GuestConn> conns_;  // by host (local) port
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_target();
  (void)VsockHarness::memory();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t setup = in.u8();
  const size_t fds_before = open_fd_count();
  {
    auto loop = EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    Session s(std::move(*loop), setup);
    for (size_t i = 0; i < kMaxOps && !in.empty(); ++i) s.run_op(in);
    s.finish(in);
  }
  FUZZ_CHECK(open_fd_count() == fds_before);
  return 0;
}
