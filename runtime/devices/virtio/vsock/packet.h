// The virtio-vsock packet header (virtio 1.2, 5.10.6) and the constants the
// device uses, with names from <linux/virtio_vsock.h>.
#pragma once

#include <linux/virtio_vsock.h>

#include <cstdint>

namespace husk::virtio {

// The well-known CID of the host (<linux/vm_sockets.h> VMADDR_CID_HOST).
inline constexpr uint64_t kHostCid = 2;
inline constexpr uint64_t kPacketHeaderSize = sizeof(virtio_vsock_hdr);
static_assert(kPacketHeaderSize == 44);
// The largest payload husk puts in or accepts from one packet (Linux uses
// at most 64 KiB).
inline constexpr uint32_t kMaxPacketPayload = 64 * 1024;
// Receive buffer space husk advertises per connection (buf_alloc): the
// most guest data it ever holds for a host socket that is not reading.
inline constexpr uint32_t kConnectionBufAlloc = 256 * 1024;

}  // namespace husk::virtio
