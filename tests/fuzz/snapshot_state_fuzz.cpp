// libFuzzer target for the snapshot state file (runtime/snapshot/
// snapshot_file.h, snapshot_codec.h): a state file comes from disk, where
// anyone who can write the snapshot cache may have put anything. Each input
// is one file, given to parse_state_file; so that mutations get past the
// checksum, the same bytes go to decode_state as a bare state part, and so
// does what follows a header parse_state_header accepts.
// Checked, besides no crash, leak or UB (and no allocation the input cannot
// justify: -rss_limit_mb and -malloc_limit_mb catch it):
//   - a state that decodes encodes again to exactly its bytes (the encoding
//     is canonical, and the encoder takes whatever the decoder gives);
//   - a file that parses is written again byte for byte by write_state_file
//     from its header's fields and its state part, and read back the same;
//   - check_compatible accepts the header's own build id and configuration
//     and refuses any other configuration;
//   - no error message holds a control character (a file cannot forge lines).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "runtime/common/unique_fd.h"
#include "runtime/snapshot/snapshot_codec.h"
#include "runtime/snapshot/snapshot_file.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk;
using namespace husk::snapshot;

void check_message(const Error& e) {
  FUZZ_CHECK(!e.message.empty());
  for (char c : e.message) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20);
}

template <typename T>
void check_error(const Result<T>& r) {
  if (!r) check_message(r.error());
}

// decode_state, and the canonical round trip of whatever it accepts.
void decode_and_encode(std::span<const uint8_t> bytes) {
  auto m = decode_state(bytes);
  check_error(m);
  if (!m) return;
  FUZZ_CHECK(!m->vcpus.empty() && m->vcpus.size() <= kMaxVcpus);
  FUZZ_CHECK(m->virtio.size() <= kMaxVirtioDevices);
  auto again = encode_state(*m);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(again->size() == bytes.size());
  FUZZ_CHECK(std::equal(again->begin(), again->end(), bytes.begin()));
}

void check_file_round_trip(std::span<const uint8_t> bytes, const StateFile& f) {
  const StateHeader& h = f.header;
  FUZZ_CHECK(h.version == kStateFormatVersion);
  FUZZ_CHECK(uint64_t{h.header_size} + h.state_size == bytes.size());
  FUZZ_CHECK(f.state.memory_bytes == h.memory_bytes);
  UniqueFd fd(::memfd_create("snapshot-state-fuzz", MFD_CLOEXEC));
  FUZZ_CHECK(fd.valid());
  const StateHeaderInfo info{h.build_id, h.config, h.memory_bytes};
  FUZZ_CHECK(write_state_file(fd.get(), info, bytes.subspan(h.header_size)).has_value());
  std::vector<uint8_t> written(bytes.size());
  FUZZ_CHECK(::pread(fd.get(), written.data(), written.size(), 0) == static_cast<ssize_t>(bytes.size()));
  FUZZ_CHECK(std::equal(written.begin(), written.end(), bytes.begin()));
  auto back = read_state_file(fd.get());
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(back->header.checksum == h.checksum);

  FUZZ_CHECK(check_compatible(h, h.build_id, h.config).has_value());
  const std::string other = h.config + "fuzz=1\n";
  auto refused = check_compatible(h, h.build_id, other);
  FUZZ_CHECK(!refused.has_value());
  check_message(refused.error());
  auto other_build = check_compatible(h, h.build_id + "x", h.config);
  FUZZ_CHECK(!other_build.has_value());
  check_message(other_build.error());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  decode_and_encode(bytes);

  auto header = parse_state_header(bytes);
  check_error(header);
  if (header) {
    FUZZ_CHECK(header->header_size <= size);
    FUZZ_CHECK(header->build_id.size() <= kMaxBuildIdBytes && header->config.size() <= kMaxConfigBytes);
    decode_and_encode(bytes.subspan(header->header_size));
    // Whatever the configuration, the comparison names a difference in
    // printable text or accepts an equal one.
    auto c = check_compatible(*header, header->build_id, "vcpus=1\nmemory_mib=128\n");
    check_error(c);
    FUZZ_CHECK(c.has_value() == (header->config == "vcpus=1\nmemory_mib=128\n"));
  }

  auto file = parse_state_file(bytes);
  check_error(file);
  if (file) {
    FUZZ_CHECK(header.has_value());
    check_file_round_trip(bytes, *file);
  }
  return 0;
}
