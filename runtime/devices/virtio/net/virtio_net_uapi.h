// What husk uses of <linux/virtio_net.h>, which C++ cannot include (its
// control queue header has a field named `class`). Names and values as in
// that header and the virtio 1.2 spec, section 5.1.
#pragma once

#include <cstdint>

namespace husk::virtio {

inline constexpr unsigned kVirtioNetFMtu = 3;      // VIRTIO_NET_F_MTU
inline constexpr unsigned kVirtioNetFMac = 5;      // VIRTIO_NET_F_MAC
inline constexpr unsigned kVirtioNetFStatus = 16;  // VIRTIO_NET_F_STATUS
inline constexpr uint16_t kVirtioNetSLinkUp = 1;   // VIRTIO_NET_S_LINK_UP

// struct virtio_net_config, up to the fields husk offers (5.1.4).
struct VirtioNetConfig {
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
  uint16_t mtu;
} __attribute__((packed));
static_assert(sizeof(VirtioNetConfig) == 12);

// struct virtio_net_hdr_v1 (5.1.6): before every frame, both ways.
struct VirtioNetHdrV1 {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
} __attribute__((packed));
static_assert(sizeof(VirtioNetHdrV1) == 12);

}  // namespace husk::virtio
