// The byte-level layer of the husk agent protocol: frame header, bounded
// little-endian readers and writers, and the decode status values.
//
// Shared by the guest agent (a static program) and the host runtime, so it
// uses the standard library only and never throws on malformed input: every
// read is bounds-checked and a short or bad buffer becomes a Status value.
//
// A frame on the stream is:
//   u32 length   bytes that follow the length field (type + id + payload)
//   u16 type     MsgType (protocol.h)
//   u32 id       request id; events and job-scoped frames carry the id of
//                the request they belong to
//   payload      the message's fields, in declaration order, little-endian;
//                strings and blobs are u32 length + bytes, lists are u32
//                count + elements
// A frame whose length exceeds kMaxFrameBody is refused before its body is
// read, so neither side ever buffers more than ~1 MiB for one frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace husk::agent::proto {

inline constexpr size_t kLengthSize = 4;
inline constexpr size_t kHeaderSize = 10;              // length + type + id
inline constexpr size_t kMaxFrameBody = 1u << 20;      // type + id + payload
inline constexpr size_t kMaxPayload = kMaxFrameBody - 6;
// Data-carrying messages (output, stdin, file chunks) are cut to this size
// so that a frame always fits with room for its other fields.
inline constexpr size_t kMaxChunk = 256u * 1024;
// Upper bounds on list lengths, checked before anything is reserved.
inline constexpr uint32_t kMaxListItems = 65536;

enum class Status : uint8_t {
  kOk,
  kNeedMore,     // the buffer ends before the frame does: read more
  kTooLarge,     // frame length beyond kMaxFrameBody: the stream is unusable
  kUnknownType,  // well-framed but the type is not one we know: skip or refuse
  kMalformed,    // payload truncated, trailing bytes, bad enum or bool
  kWrongType,    // decode<M> called on a frame of another type
};

inline const char* status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kNeedMore: return "truncated frame";
    case Status::kTooLarge: return "frame too large";
    case Status::kUnknownType: return "unknown message type";
    case Status::kMalformed: return "malformed payload";
    case Status::kWrongType: return "unexpected message type";
  }
  return "bad status";
}

// Appends fields to a byte vector. Methods take values so the same field
// list (see Message::fields) serves both Writer and Reader.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}

  bool u8(uint8_t v) { return put(v, 1); }
  bool u16(uint16_t v) { return put(v, 2); }
  bool u32(uint32_t v) { return put(v, 4); }
  bool u64(uint64_t v) { return put(v, 8); }
  bool i32(int32_t v) { return put(static_cast<uint32_t>(v), 4); }
  bool i64(int64_t v) { return put(static_cast<uint64_t>(v), 8); }
  bool boolean(bool v) { return u8(v ? 1 : 0); }
  template <typename E>
  bool enum8(E v, uint8_t /*count*/) { return u8(static_cast<uint8_t>(v)); }
  bool bytes(const std::string& s) {
    return bytes(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  bool bytes(std::span<const uint8_t> s) {
    if (s.size() > kMaxPayload) return false;
    u32(static_cast<uint32_t>(s.size()));
    // uint8_t to uint8_t, so the copy is one memmove: from char iterators
    // the agent's -Os build copied byte by byte, which was most of the
    // output path's cost in a nested guest.
    out_.insert(out_.end(), s.begin(), s.end());
    return true;
  }
  bool cstr(const std::string& s) { return bytes(s); }
  bool cstr_list(const std::vector<std::string>& v, uint32_t max = kMaxListItems) {
    if (v.size() > max) return false;
    u32(static_cast<uint32_t>(v.size()));
    for (const std::string& s : v) {
      if (!bytes(s)) return false;
    }
    return true;
  }
  // A list of structs, each written by its own field list.
  template <typename T>
  bool list(const std::vector<T>& v, uint32_t max) {
    if (v.size() > max) return false;
    u32(static_cast<uint32_t>(v.size()));
    for (const T& item : v) {
      if (!T::fields(item, *this)) return false;
    }
    return true;
  }

 private:
  bool put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return true;
  }
  std::vector<uint8_t>& out_;
};

// Reads fields from a peer-supplied payload. Every method checks the bytes
// left first; a failed read leaves the reader failed and the field untouched.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}

  bool u8(uint8_t& v) { return get(v); }
  bool u16(uint16_t& v) { return get(v); }
  bool u32(uint32_t& v) { return get(v); }
  bool u64(uint64_t& v) { return get(v); }
  bool i32(int32_t& v) {
    uint32_t u = 0;
    if (!get(u)) return false;
    v = static_cast<int32_t>(u);  // two's complement on every target we build
    return true;
  }
  bool i64(int64_t& v) {
    uint64_t u = 0;
    if (!get(u)) return false;
    v = static_cast<int64_t>(u);
    return true;
  }
  bool boolean(bool& v) {
    uint8_t b = 0;
    if (!get(b)) return false;
    if (b > 1) return fail();  // only 0 and 1: keeps encodings canonical
    v = b == 1;
    return true;
  }
  // An enum carried in one byte; values at or past `count` are refused so a
  // decoded enum always names one of its enumerators.
  template <typename E>
  bool enum8(E& v, uint8_t count) {
    uint8_t b = 0;
    if (!get(b)) return false;
    if (b >= count) return fail();
    v = static_cast<E>(b);
    return true;
  }
  // A blob: the length comes from the peer, so it is checked against the
  // bytes actually left before anything is allocated or copied.
  bool bytes(std::string& s) {
    uint32_t n = 0;
    if (!get(n)) return false;
    if (n > left()) return fail();
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  // A blob left in place: `s` views the payload (valid as long as it is),
  // with the same bounds check as above and no copy.
  bool bytes(std::span<const uint8_t>& s) {
    uint32_t n = 0;
    if (!get(n)) return false;
    if (n > left()) return fail();
    s = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  // A string that becomes a C string (path, argv): an embedded NUL would
  // silently cut it on the other side, so it is refused here.
  bool cstr(std::string& s) {
    std::string tmp;
    if (!bytes(tmp)) return false;
    if (tmp.find('\0') != std::string::npos) return fail();
    s = std::move(tmp);
    return true;
  }
  bool cstr_list(std::vector<std::string>& v, uint32_t max = kMaxListItems) {
    uint32_t n = 0;
    if (!get(n)) return false;
    // Each element needs at least its 4-byte length, so a count larger than
    // left()/4 cannot be honest; refusing it bounds the reserve below.
    if (n > max || n > left() / 4) return fail();
    std::vector<std::string> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      std::string s;
      if (!cstr(s)) return false;
      out.push_back(std::move(s));
    }
    v = std::move(out);
    return true;
  }

  // A list of structs read by their field lists. Only structs that start
  // with a string are listed (HostEntry, BootMark), so each takes at least 4 bytes
  // and the count is bounded as above.
  template <typename T>
  bool list(std::vector<T>& v, uint32_t max) {
    uint32_t n = 0;
    if (!get(n)) return false;
    if (n > max || n > left() / 4) return fail();
    std::vector<T> out;
    out.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      T item;
      if (!T::fields(item, *this)) return fail();
      out.push_back(std::move(item));
    }
    v = std::move(out);
    return true;
  }

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }
  [[nodiscard]] size_t left() const { return in_.size() - pos_; }

 private:
  template <typename T>
  bool get(T& v) {
    if (!ok_ || left() < sizeof(T)) return fail();
    uint64_t acc = 0;
    for (size_t i = 0; i < sizeof(T); ++i) acc |= uint64_t{in_[pos_ + i]} << (8 * i);
    pos_ += sizeof(T);
    v = static_cast<T>(acc);  // acc holds exactly sizeof(T) bytes
    return true;
  }
  bool fail() {
    ok_ = false;
    return false;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// One frame located in a receive buffer; payload points into that buffer.
struct FrameView {
  uint16_t type = 0;
  uint32_t id = 0;
  std::span<const uint8_t> payload;
  size_t size = 0;  // bytes the whole frame occupies, header included
};

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace husk::agent::proto
