// Vsock: virtio-vsock (virtio 1.2, section 5.10), stream sockets only, with
// the host side on Unix sockets in Firecracker's scheme:
//   - host-initiated: a client connects to `uds_path`, writes
//     "CONNECT <port>\n"; husk sends the guest a REQUEST for that port and,
//     on the guest's RESPONSE, answers "OK <local port>\n"; on RST it closes
//     the client.
//   - guest-initiated: a guest connection to CID 2 port P is connected to
//     the Unix socket "<uds_path>_P", or refused with RST.
// Queues: rx (0, device to guest), tx (1, guest to device), event (2, kept
// unused: no transport-reset events without snapshots).
// Flow control per 5.10.6.3: guest data a host socket cannot take yet is
// held up to the advertised buf_alloc and never beyond (a guest that sends
// more is reset); host data moves only while the guest has credit and has
// given receive buffers, otherwise the socket is simply not read. Nothing
// is dropped and nothing grows without bound. Control packets waiting for
// receive buffers are bounded too (kMaxPendingControl).
// Missing: SEQPACKET, a timeout for a REQUEST the guest never answers.
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

class Vsock final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kMaxConnections = 1024;
  static constexpr size_t kMaxPendingControl = 4096;
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;

  // Binds and listens on `uds_path` (which must not exist yet); the socket
  // file is removed again when the device goes away.
  static Result<std::shared_ptr<Vsock>> create(uint64_t guest_cid, std::string uds_path);
  ~Vsock() override;

  [[nodiscard]] uint32_t device_id() const override;
  [[nodiscard]] uint64_t features() const override { return kCommonFeatures; }
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override {
    return {kQueueSize, kQueueSize, kQueueSize};
  }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  [[nodiscard]] Result<void> activate(DeviceContext context) override;
  void process_queue(uint16_t queue) override;
  void reset() override;

  [[nodiscard]] size_t connection_count() const { return connections_.size(); }

 private:
  struct Control {
    VsockKey key;
    uint16_t op;
    uint32_t flags;
  };

  Vsock(uint64_t guest_cid, std::string uds_path, UniqueFd listener);

  // Guest side (vsock.cpp).
  void process_tx();
  void handle_packet(const virtio_vsock_hdr& hdr, ChainReader& payload);
  void handle_request(const virtio_vsock_hdr& hdr);
  void pump_rx();
  [[nodiscard]] std::optional<DescriptorChain> take_rx_chain();
  void queue_control(const VsockKey& key, uint16_t op, uint32_t flags = 0);
  [[nodiscard]] virtio_vsock_hdr make_header(const VsockKey& key, uint16_t op, uint32_t flags);

  // Host side (vsock_host.cpp).
  void on_listener();
  void on_host_event(VsockKey key, uint32_t events);
  void read_connect_line(VsockConnection& conn);
  void send_host_data(VsockConnection& conn);
  void flush_to_host(VsockConnection& conn);
  void update_interest(VsockConnection& conn);
  void update_all_interest();
  // By value: callers often pass the key of the connection being erased.
  void close_connection(VsockKey key, bool send_rst);
  [[nodiscard]] uint32_t allocate_local_port();
  [[nodiscard]] Result<void> watch(VsockConnection& conn, uint32_t events);

  uint64_t guest_cid_;
  std::string uds_path_;
  UniqueFd listener_;
  DeviceContext ctx_;
  bool active_ = false;
  std::map<VsockKey, VsockConnection> connections_;
  std::deque<Control> control_;
  std::optional<DescriptorChain> held_rx_;  // popped but not filled yet
  bool rx_starved_ = false;  // the guest gave no receive buffer last time
  uint32_t next_local_port_ = 1u << 30;
};

}  // namespace husk::virtio
