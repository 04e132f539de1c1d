// Vsock: virtio-vsock (virtio 1.2, section 5.10), stream sockets only, with
// the host side on Unix sockets in Firecracker's scheme:
//   - host-initiated: a client connects to `uds_path`, writes
//     "CONNECT <port>\n"; husk sends the guest a REQUEST for that port and,
//     on the guest's RESPONSE, answers "OK <local port>\n"; on RST it closes
//     the client.
//   - guest-initiated: a guest connection to CID 2 port P is connected to
//     the Unix socket "<uds_path>_P", or refused with RST.
// Queues: rx (0, device to guest), tx (1, guest to device), event (2: only
// a restored VM's transport reset, which tells the guest that every
// connection it had is gone).
// Flow control per 5.10.6.3: guest data a host socket cannot take yet is
// held up to the advertised buf_alloc and never beyond (a guest that sends
// more is reset); host data moves only while the guest has credit and has
// given receive buffers, otherwise the socket is simply not read (and, with
// nothing to watch, leaves the event loop until there is). Nothing is
// dropped and nothing grows without bound.
// Budgets (per device; defaults in Vsock::Budgets): at most 1024
// connections, of which at most 512 opened by the guest and at most 64
// still in their handshake; a host
// client has 5 s to send its CONNECT line and the guest 10 s to answer a
// REQUEST; control packets waiting for receive buffers are at most one of
// each kind per connection plus kMaxPendingRst (256) resets; one event moves
// at most kPacketsPerEvent (64) packets; guest bytes held for host sockets
// that do not read are at most 256 KiB per connection (its credit) and 16 MiB
// in all (then the connection adding to them is reset).
// Missing: SEQPACKET.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "runtime/common/unique_fd.h"
#include "runtime/devices/virtio/chain_io.h"
#include "runtime/devices/virtio/virtio_device.h"
#include "runtime/devices/virtio/vsock/connection.h"

namespace husk::virtio {

// What a guest or a host client can make the device hold.
struct VsockBudgets {
  size_t max_connections = 1024;
  // Of those, opened by the guest: the rest stays for host clients (the
  // agent's), so a guest that opens connections without end cannot lock
  // the host out.
  size_t max_guest_connections = 512;
  size_t max_handshakes = 64;  // connections not yet established
  int64_t connect_line_timeout_ms = 5000;     // host client: "CONNECT <port>\n"
  int64_t guest_response_timeout_ms = 10000;  // guest: RESPONSE to our REQUEST
  // Guest bytes held for host sockets that do not read yet, all connections
  // together; past it a connection that adds bytes its host socket does not
  // take is reset (the tx queue, which all connections share, never waits).
  size_t max_held_bytes = 16u << 20;
};

class Vsock final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kMaxPendingRst = 256;
  static constexpr uint32_t kPacketsPerEvent = 64;
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kEventQueue = 2;

  using Budgets = VsockBudgets;

  // Binds and listens on `uds_path` (which must not exist yet); the socket
  // file is removed again when the device goes away.
  static Result<std::shared_ptr<Vsock>> create(uint64_t guest_cid, std::string uds_path,
                                               Budgets budgets = Budgets());
  ~Vsock() override;

  [[nodiscard]] uint32_t device_id() const override;
  [[nodiscard]] uint64_t features() const override { return kCommonFeatures; }
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override {
    return {kQueueSize, kQueueSize, kQueueSize};
  }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  [[nodiscard]] Result<void> activate(DeviceContext context) override;
  [[nodiscard]] Result<Served> process_queue(uint16_t queue) override;
  void reset() override;
  // Sends the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: the connections it
  // had before the snapshot are gone (the host side has none). Host
  // clients wait (in the listener's backlog) until the guest has handled
  // it, which it shows by giving the event buffer back: a connection made
  // before would be reset with the old ones. At most kResetAckTimeoutMs.
  [[nodiscard]] Result<void> restored() override;
  static constexpr int64_t kResetAckTimeoutMs = 2000;
  [[nodiscard]] bool awaiting_reset_ack() const { return reset_mark_.has_value(); }

  // What outlives an activation. Connections do not: a restored VM starts
  // with none (its transport is reset).
  struct State {
    uint64_t guest_cid = 0;
    uint32_t next_local_port = 1u << 30;
  };
  [[nodiscard]] State state() const { return state_; }
  // Before activation; the CID must be this device's.
  [[nodiscard]] Result<void> restore_state(const State& state);

  [[nodiscard]] size_t connection_count() const { return connections_.size(); }
  // Control packets waiting for guest receive buffers.
  [[nodiscard]] size_t pending_control() const;
  // Guest bytes held for host sockets that do not read yet.
  [[nodiscard]] uint64_t held_bytes() const { return held_total_; }

 private:
  Vsock(uint64_t guest_cid, std::string uds_path, UniqueFd listener, Budgets budgets);

  // Guest side (vsock.cpp).
  [[nodiscard]] Result<Served> process_tx();
  [[nodiscard]] Result<void> handle_packet(const virtio_vsock_hdr& hdr, ChainReader& payload);
  void handle_request(const virtio_vsock_hdr& hdr);
  // Sends owed control packets while the guest gives receive buffers.
  [[nodiscard]] Result<void> pump_rx();
  [[nodiscard]] bool control_pending() const { return !ready_.empty() || !orphan_rst_.empty(); }
  [[nodiscard]] Result<std::optional<DescriptorChain>> take_rx_chain();
  [[nodiscard]] Result<void> put_control(const DescriptorChain& chain, const VsockKey& key, uint16_t op,
                                         uint32_t flags);
  void owe(VsockConnection& conn, VsockPendingOp op);
  void owe_rst(const VsockKey& key);
  [[nodiscard]] virtio_vsock_hdr make_header(const VsockKey& key, uint16_t op, uint32_t flags);

  // The guest handled the transport reset (or was given up on): host
  // clients are taken again.
  [[nodiscard]] Result<void> reset_acknowledged();

  // Host side (vsock_host.cpp).
  [[nodiscard]] Result<void> on_listener();
  [[nodiscard]] Result<void> on_host_event(VsockKey key, uint32_t events);
  [[nodiscard]] Result<void> on_timer();
  [[nodiscard]] Result<void> read_connect_line(VsockConnection& conn);
  [[nodiscard]] Result<void> send_host_data(VsockConnection& conn);
  [[nodiscard]] Result<void> flush_to_host(VsockConnection& conn);
  void update_interest(VsockConnection& conn);
  // Lowers the device-wide count of held bytes.
  void release_held(uint32_t bytes);
  void update_all_interest();
  // By value: callers often pass the key of the connection being erased.
  void close_connection(VsockKey key, bool send_rst);
  [[nodiscard]] size_t handshakes() const;
  [[nodiscard]] size_t guest_connections() const;
  void arm_timer();
  [[nodiscard]] uint32_t allocate_local_port();
  [[nodiscard]] Result<void> watch(VsockConnection& conn, uint32_t events);

  std::string uds_path_;
  UniqueFd listener_;
  Budgets budgets_;
  State state_;
  DeviceContext ctx_;
  UniqueFd timer_;  // handshake deadlines; armed while there are handshakes
  bool timer_armed_ = false;
  std::map<VsockKey, VsockConnection> connections_;
  std::deque<VsockKey> ready_;       // connections that owe control packets
  std::deque<VsockKey> orphan_rst_;  // resets for connections that are gone
  bool rx_starved_ = false;  // the guest gave no receive buffer last time
  // A restored VM's transport reset, until the guest handles it: the event
  // queue's available index when it was sent, and the give-up timer.
  std::optional<uint16_t> reset_mark_;
  UniqueFd reset_timer_;
  uint64_t held_total_ = 0;  // guest bytes held for host sockets, all connections
};

}  // namespace husk::virtio
