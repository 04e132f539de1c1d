// ByteWriter and ByteReader: the little-endian binary encoding the snapshot
// state file is made of (docs: snapshot_file.h for the file's layout).
//
// Integers are little-endian of their own width; byte strings and strings
// are a u32 length then the bytes; a trivially copyable struct (a KVM UAPI
// struct) is a u32 size then its bytes as they are in memory, so a reader
// built with another layout of it sees the size differ instead of reading
// garbage; an array of such structs is the element size, a u32 count, then
// the elements.
//
// The reader's input is a file that anyone may have written: every read is
// bounds-checked and fails as a value, and no length or count makes it
// allocate more than the input left to read could fill (a length of 4 GiB
// on a 100-byte input is an error, not a bad_alloc).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "runtime/common/result.h"

namespace husk::snapshot {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put_le(v, 2); }
  void u32(uint32_t v) { put_le(v, 4); }
  void u64(uint64_t v) { put_le(v, 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  // A u32 length, then the bytes.
  void bytes(std::span<const uint8_t> data);
  void string(std::string_view s);
  // The bytes alone, no length (a fixed-size field).
  void fixed(std::span<const uint8_t> data) { out_.insert(out_.end(), data.begin(), data.end()); }

  // sizeof(T) as a u32, then the object's bytes.
  template <typename T>
  void raw(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    u32(sizeof(T));
    append_object(&value, sizeof(T));
  }
  // sizeof(T) and the count as u32s, then the elements' bytes.
  template <typename T>
  void raw_array(std::span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    u32(sizeof(T));
    if (!check_length(values.size())) return;
    u32(static_cast<uint32_t>(values.size()));
    if (!values.empty()) append_object(values.data(), values.size_bytes());
  }

  [[nodiscard]] size_t size() const { return out_.size(); }
  // The bytes written, or the first error (a length past u32).
  [[nodiscard]] Result<std::vector<uint8_t>> finish() &&;

 private:
  void put_le(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void append_object(const void* p, size_t n) {
    const size_t at = out_.size();
    out_.resize(at + n);
    std::memcpy(out_.data() + at, p, n);
  }
  bool check_length(size_t n);

  std::vector<uint8_t> out_;
  std::string error_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  [[nodiscard]] Result<uint8_t> u8();
  [[nodiscard]] Result<uint16_t> u16();
  [[nodiscard]] Result<uint32_t> u32();
  [[nodiscard]] Result<uint64_t> u64();
  // 0 or 1; anything else is an error.
  [[nodiscard]] Result<bool> boolean();
  // A u32 length of at most `max` (and at most what is left), then the bytes.
  [[nodiscard]] Result<std::vector<uint8_t>> bytes(size_t max);
  [[nodiscard]] Result<std::string> string(size_t max);
  // The next `n` bytes, not copied.
  [[nodiscard]] Result<std::span<const uint8_t>> fixed(size_t n);
  // A u32 count of at most `max` elements of at least `min_element_bytes`
  // each in the input: a count the rest of the input cannot hold fails here,
  // before anything is allocated for it.
  [[nodiscard]] Result<uint32_t> count(uint32_t max, size_t min_element_bytes);

  // What ByteWriter::raw wrote. A stored size other than sizeof(T) is an
  // error "stored as N bytes, M here", followed by `mismatch_note`.
  template <typename T>
  [[nodiscard]] Result<T> raw(std::string_view mismatch_note = {}) {
    static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>);
    HUSK_TRY(element_size(sizeof(T), mismatch_note));
    HUSK_TRY_ASSIGN(const std::span<const uint8_t> b, fixed(sizeof(T)));
    // Safe: T is trivially copyable (any bytes are a value of it to C++; the
    // KVM structs are plain integers) and `b` holds exactly sizeof(T) bytes.
    T value{};
    std::memcpy(&value, b.data(), sizeof(T));
    return value;
  }
  // What ByteWriter::raw_array wrote, at most `max` elements.
  template <typename T>
  [[nodiscard]] Result<std::vector<T>> raw_array(uint32_t max, std::string_view mismatch_note = {}) {
    static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>);
    HUSK_TRY(element_size(sizeof(T), mismatch_note));
    HUSK_TRY_ASSIGN(const uint32_t n, count(max, sizeof(T)));
    HUSK_TRY_ASSIGN(const std::span<const uint8_t> b, fixed(size_t{n} * sizeof(T)));
    // Safe: count() checked that the input holds n elements; T as above.
    std::vector<T> values(n);
    if (n != 0) std::memcpy(values.data(), b.data(), b.size());
    return values;
  }

  [[nodiscard]] size_t offset() const { return pos_; }
  [[nodiscard]] size_t remaining() const { return in_.size() - pos_; }
  // Fails unless every byte was read.
  [[nodiscard]] Result<void> expect_end() const;

 private:
  [[nodiscard]] Result<uint64_t> le(size_t width);
  [[nodiscard]] Result<void> element_size(size_t expected, std::string_view mismatch_note);

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace husk::snapshot
