// libFuzzer target for the KVM CPUID cache file (runtime/kvm/cpuid_cache.h):
// the file lives in the user's runtime folder, so what is read back may be
// damaged, cut short, written by another build or for another host. Each
// input is read three ways:
//   1. the whole input is a cache file, decoded with kFixedKey (the key
//      tests/fuzz/make_seeds.py writes its `fixed_*` seeds for);
//   2. byte 0 is a key length n, the next n bytes (fewer at the end) are the
//      key, and the rest is a cache file decoded with that key, so that
//      mutations of any key get past the key check to the entries
//      (make_seeds.py's `keyed_*` seeds);
//   3. the whole input again, decoded with the key the file itself names
//      (its key size, then that many bytes), when it names one that fits
//      (`named_*` seeds: keys at the size limit).
// File layout (cpuid_cache.cpp): "HUSKCPU1", u32 key size, the key, u32
// count, count kvm_cpuid_entry2 of 40 bytes; integers little-endian.
// Checked, besides no crash, leak or UB:
//   - decode accepts exactly the files a reference reader accepts: the
//     magic, a key of at most 4096 bytes equal to the one asked for, 1 to
//     256 entries (kvm.h: kMaxCpuidEntries), no byte more or less;
//   - accepted entries encode again, with the same key, to exactly the
//     input bytes (the encoding is canonical);
//   - the same bytes decoded with a different key (one byte longer, one
//     byte changed, the other keys above when they differ) are refused;
//   - every error message is non-empty and holds no control character.
#include <linux/kvm.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/kvm/cpuid_cache.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk;
using namespace husk::kvm;

// make_seeds.py writes entries as ten u32 each.
static_assert(sizeof(kvm_cpuid_entry2) == 40);

// What the file format allows (cpuid_cache.cpp: kMagic, kMaxKey,
// kMaxEntries; the header says "more entries than KVM ever reports").
constexpr char kMagic[8] = {'H', 'U', 'S', 'K', 'C', 'P', 'U', '1'};
constexpr uint64_t kMaxKey = 4096;
constexpr uint64_t kMaxEntries = 256;  // kvm.h: kMaxCpuidEntries

// A key as cpuid_cache_key writes one; make_seeds.py has the same text.
constexpr std::string_view kFixedKey =
    "boot_id=8d3c6a5e-1f0b-4c1e-9a57-3b2f0c9d4e11 microcode=0xf0 kvm=2792:5:412:1764576000.123456789 "
    "entry_size=40";

void check_message(const Error& e) {
  FUZZ_CHECK(!e.message.empty());
  for (char c : e.message) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
}

uint32_t le32(std::span<const uint8_t> bytes, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + at, sizeof(v));
  return v;
}

// The key the file names, when its header holds one that fits in it.
bool own_key(std::span<const uint8_t> bytes, std::string& key) {
  if (bytes.size() < 12 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return false;
  const uint64_t key_size = le32(bytes, 8);
  if (key_size > bytes.size() - 12) return false;
  key.assign(reinterpret_cast<const char*>(bytes.data() + 12), key_size);
  return true;
}

// The reference reader: does `bytes` hold a well-formed file for `key`?
bool well_formed(std::span<const uint8_t> bytes, std::string_view key) {
  std::string named;
  if (!own_key(bytes, named) || named.size() > kMaxKey || named != key) return false;
  const uint64_t at = 12 + named.size();
  if (bytes.size() - at < 4) return false;
  const uint64_t count = le32(bytes, at);
  return count >= 1 && count <= kMaxEntries && bytes.size() - at - 4 == count * sizeof(kvm_cpuid_entry2);
}

// Decodes `bytes` with `key`; checks the result against the reference
// reader and, when accepted, the canonical round trip and that other keys
// are refused. True when accepted.
bool decode_and_check(const char* what, std::span<const uint8_t> bytes, const std::string& key) {
  auto entries = decode_cpuid_cache(bytes, key);
  FUZZ_TRACE("%s (%zu-byte key, %zu-byte file): %s%s\n", what, key.size(), bytes.size(),
             entries ? "accepted" : "refused: ", entries ? "" : entries.error().message.c_str());
  FUZZ_CHECK(entries.has_value() == well_formed(bytes, key));
  if (!entries) {
    check_message(entries.error());
    return false;
  }
  FUZZ_TRACE("  %zu entries\n", entries->size());
  FUZZ_CHECK(!entries->empty() && entries->size() <= kMaxEntries);
  FUZZ_CHECK(bytes.size() == 16 + key.size() + entries->size() * sizeof(kvm_cpuid_entry2));
  const std::vector<uint8_t> again = encode_cpuid_cache(key, *entries);
  FUZZ_CHECK(again.size() == bytes.size());
  FUZZ_CHECK(std::equal(again.begin(), again.end(), bytes.begin()));

  auto longer = decode_cpuid_cache(bytes, key + "x");
  FUZZ_CHECK(!longer.has_value());
  check_message(longer.error());
  if (!key.empty()) {
    std::string changed = key;
    changed[changed.size() / 2] = static_cast<char>(changed[changed.size() / 2] ^ 0x01);
    auto other = decode_cpuid_cache(bytes, changed);
    FUZZ_CHECK(!other.has_value());
    check_message(other.error());
    auto shorter = decode_cpuid_cache(bytes, key.substr(0, key.size() - 1));
    FUZZ_CHECK(!shorter.has_value());
    check_message(shorter.error());
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const std::string fixed(kFixedKey);

  // 1. The whole input, for the fixed key.
  const bool fixed_ok = decode_and_check("fixed key", bytes, fixed);

  // 2. A key from the input, then a file for it.
  fuzz::Input in(data, size);
  const std::string key = in.string();
  const std::span<const uint8_t> file = in.rest();
  if (decode_and_check("key from the input", file, key) && key != fixed) {
    auto with_fixed = decode_cpuid_cache(file, fixed);
    FUZZ_CHECK(!with_fixed.has_value());
    check_message(with_fixed.error());
  }

  // 3. The whole input, for the key it names.
  std::string named;
  if (own_key(bytes, named)) {
    const bool named_ok = decode_and_check("key the file names", bytes, named);
    // A file is for one key only: the one it names.
    if (fixed_ok) FUZZ_CHECK(named_ok && named == fixed);
  } else {
    FUZZ_CHECK(!fixed_ok);
  }
  return 0;
}
