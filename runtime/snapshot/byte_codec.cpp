#include "runtime/snapshot/byte_codec.h"

#include <limits>

#include <fmt/format.h>

namespace husk::snapshot {

bool ByteWriter::check_length(size_t n) {
  if (n <= std::numeric_limits<uint32_t>::max()) return true;
  if (error_.empty()) error_ = fmt::format("at byte {}: a length of {} does not fit in 32 bits", out_.size(), n);
  return false;
}

void ByteWriter::bytes(std::span<const uint8_t> data) {
  if (!check_length(data.size())) return;
  u32(static_cast<uint32_t>(data.size()));
  fixed(data);
}

void ByteWriter::string(std::string_view s) {
  // Safe: a char and a uint8_t have the same size and any bytes are both.
  bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

Result<std::vector<uint8_t>> ByteWriter::finish() && {
  if (!error_.empty()) return fail(error_);
  return std::move(out_);
}

Result<std::span<const uint8_t>> ByteReader::fixed(size_t n) {
  if (n > remaining()) {
    return fail(fmt::format("truncated at byte {}: {} bytes needed, {} left", pos_, n, remaining()));
  }
  const auto out = in_.subspan(pos_, n);
  pos_ += n;
  return out;
}

Result<uint64_t> ByteReader::le(size_t width) {
  HUSK_TRY_ASSIGN(const std::span<const uint8_t> b, fixed(width));
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{b[i]} << (8 * i);
  return v;
}

Result<uint8_t> ByteReader::u8() {
  HUSK_TRY_ASSIGN(const uint64_t v, le(1));
  return static_cast<uint8_t>(v);
}

Result<uint16_t> ByteReader::u16() {
  HUSK_TRY_ASSIGN(const uint64_t v, le(2));
  return static_cast<uint16_t>(v);
}

Result<uint32_t> ByteReader::u32() {
  HUSK_TRY_ASSIGN(const uint64_t v, le(4));
  return static_cast<uint32_t>(v);
}

Result<uint64_t> ByteReader::u64() { return le(8); }

Result<bool> ByteReader::boolean() {
  const size_t at = pos_;
  HUSK_TRY_ASSIGN(const uint8_t v, u8());
  if (v > 1) return fail(fmt::format("at byte {}: {} is not a boolean (0 or 1)", at, v));
  return v == 1;
}

Result<std::vector<uint8_t>> ByteReader::bytes(size_t max) {
  const size_t at = pos_;
  HUSK_TRY_ASSIGN(const uint32_t n, u32());
  if (n > max) return fail(fmt::format("at byte {}: a length of {} bytes, at most {} allowed", at, n, max));
  HUSK_TRY_ASSIGN(const std::span<const uint8_t> b, fixed(n));
  return std::vector<uint8_t>(b.begin(), b.end());
}

Result<std::string> ByteReader::string(size_t max) {
  const size_t at = pos_;
  HUSK_TRY_ASSIGN(const uint32_t n, u32());
  if (n > max) return fail(fmt::format("at byte {}: a string of {} bytes, at most {} allowed", at, n, max));
  HUSK_TRY_ASSIGN(const std::span<const uint8_t> b, fixed(n));
  // Safe: fixed() returned exactly n bytes of the input.
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

Result<uint32_t> ByteReader::count(uint32_t max, size_t min_element_bytes) {
  const size_t at = pos_;
  HUSK_TRY_ASSIGN(const uint32_t n, u32());
  if (n > max) return fail(fmt::format("at byte {}: a count of {}, at most {} allowed", at, n, max));
  // n <= 2^32 and min_element_bytes is a struct size: the product fits.
  if (uint64_t{n} * min_element_bytes > remaining()) {
    return fail(fmt::format("truncated at byte {}: a count of {} needs at least {} bytes, {} left", at, n,
                            uint64_t{n} * min_element_bytes, remaining()));
  }
  return n;
}

Result<void> ByteReader::element_size(size_t expected, std::string_view mismatch_note) {
  const size_t at = pos_;
  HUSK_TRY_ASSIGN(const uint32_t stored, u32());
  if (stored == expected) return {};
  return fail(fmt::format("at byte {}: stored as {} bytes, {} here{}{}", at, stored, expected,
                          mismatch_note.empty() ? "" : ": ", mismatch_note));
}

Result<void> ByteReader::expect_end() const {
  if (remaining() == 0) return {};
  return fail(fmt::format("{} bytes left over after byte {}", remaining(), pos_));
}

}  // namespace husk::snapshot
