#include "runtime/devices/virtio/chain_io.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace husk::virtio {

ChainCursor::ChainCursor(const GuestMemory& memory, const DescriptorChain& chain, bool writable)
    : memory_(memory) {
  for (const Descriptor& d : chain.descriptors) {
    if (d.device_writable != writable || d.len == 0) continue;
    parts_.push_back(d);
    remaining_ += d.len;
  }
}

Result<std::vector<iovec>> ChainCursor::take(uint64_t len) {
  if (len > remaining_) {
    return fail(fmt::format("descriptor chain has {} bytes left, {} needed", remaining_, len));
  }
  std::vector<iovec> iov;
  while (len > 0) {
    const Descriptor& d = parts_[part_];
    const uint64_t n = std::min<uint64_t>(len, d.len - offset_);
    HUSK_TRY_ASSIGN(std::span<uint8_t> host, memory_.slice(d.addr + offset_, n));
    iov.push_back(iovec{host.data(), host.size()});
    len -= n;
    remaining_ -= n;
    consumed_ += n;
    offset_ += n;
    if (offset_ == d.len) {
      ++part_;
      offset_ = 0;
    }
  }
  return iov;
}

Result<void> ChainReader::read(std::span<uint8_t> out) {
  HUSK_TRY_ASSIGN(std::vector<iovec> iov, take(out.size()));
  size_t done = 0;
  for (const iovec& v : iov) {
    std::memcpy(out.data() + done, v.iov_base, v.iov_len);
    done += v.iov_len;
  }
  return {};
}

Result<void> ChainWriter::write(std::span<const uint8_t> data) {
  HUSK_TRY_ASSIGN(std::vector<iovec> iov, take(data.size()));
  size_t done = 0;
  for (const iovec& v : iov) {
    std::memcpy(v.iov_base, data.data() + done, v.iov_len);
    done += v.iov_len;
  }
  return {};
}

}  // namespace husk::virtio
