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

Result<Served> serve_queue(DeviceContext& ctx, uint16_t queue,
                           const std::function<Result<uint32_t>(const DescriptorChain&)>& handle) {
  if (ctx.queues == nullptr || queue >= ctx.queues->size()) return Served::kDone;
  Queue& q = (*ctx.queues)[queue];
  Served served = Served::kMore;
  uint32_t used = 0;
  for (; used < kQueueBudget; ++used) {
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, q.pop(*ctx.memory));
    if (!chain) {
      served = Served::kDone;
      break;
    }
    HUSK_TRY_ASSIGN(const uint32_t written, handle(*chain));
    HUSK_TRY(q.add_used(*ctx.memory, chain->head, written));
  }
  if (used > 0) HUSK_TRY(ctx.signal_used(queue));
  return served;
}

}  // namespace husk::virtio
