#include "runtime/devices/virtio/virtio_device.h"

#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <linux/virtio_config.h>

#include <algorithm>
#include <cstring>

namespace husk::virtio {

static_assert(kFeatureVersion1 == uint64_t{1} << VIRTIO_F_VERSION_1);
static_assert(kFeatureIndirectDesc == uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);
static_assert(kFeatureEventIdx == uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);

void read_config_bytes(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> out) {
  std::fill(out.begin(), out.end(), 0);
  if (offset >= config.size()) return;
  const size_t n = std::min<uint64_t>(out.size(), config.size() - offset);
  std::memcpy(out.data(), config.data() + offset, n);
}

void serve_queue(DeviceContext& ctx, uint16_t queue,
                 const std::function<uint32_t(const DescriptorChain&)>& handle) {
  if (ctx.queues == nullptr || queue >= ctx.queues->size()) return;
  Queue& q = (*ctx.queues)[queue];
  bool used = false;
  for (;;) {
    auto chain = q.pop(*ctx.memory);
    if (!chain) {
      ctx.fail(chain.error().message);
      return;
    }
    if (!*chain) break;
    const uint32_t written = handle(**chain);
    // The handler may have failed the device, which resets it.
    if (ctx.queues == nullptr) return;
    if (auto ok = q.add_used(*ctx.memory, (*chain)->head, written); !ok) {
      ctx.fail(ok.error().message);
      return;
    }
    used = true;
  }
  if (used) ctx.signal_used(queue);
}

}  // namespace husk::virtio
