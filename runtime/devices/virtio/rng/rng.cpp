#include "runtime/devices/virtio/rng/rng.h"

#include <linux/virtio_ids.h>
#include <sys/random.h>

#include "runtime/devices/virtio/chain_io.h"

namespace husk::virtio {

uint32_t Rng::device_id() const { return VIRTIO_ID_RNG; }

void Rng::read_config(uint64_t offset, std::span<uint8_t> data) const {
  read_config_bytes({}, offset, data);
}

Result<void> Rng::activate(DeviceContext context) {
  ctx_ = std::move(context);
  return {};
}

Result<Served> Rng::process_queue(uint16_t queue) {
  if (queue != 0) return Served::kDone;
  return serve_queue(ctx_, 0, [this](const DescriptorChain& chain) -> uint32_t {
    ChainWriter writer(*ctx_.memory, chain);
    const uint64_t want = std::min<uint64_t>(writer.remaining(), kMaxRequest);
    auto iov = writer.take(want);
    if (!iov) return 0;
    uint32_t written = 0;
    // Safe: take() returned host views of buffers already checked to lie in
    // guest memory; getrandom writes at most iov_len bytes into each.
    for (const iovec& v : *iov) {
      size_t done = 0;
      while (done < v.iov_len) {
        const ssize_t n = ::getrandom(static_cast<uint8_t*>(v.iov_base) + done, v.iov_len - done, 0);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      written += static_cast<uint32_t>(done);
      if (done < v.iov_len) break;
    }
    state_.bytes_served += written;
    return written;
  });
}

}  // namespace husk::virtio
