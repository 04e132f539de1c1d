// Checks of the agent protocol codec (guest-agent/protocol/) that both
// agent fuzz targets run on every frame they see: a frame decodes as its
// own type or is malformed, never as another type; a message that decodes
// encodes back to exactly the same bytes (the wire has one encoding per
// value, which the Reader's strict bools, enums and lengths promise; checked
// up to kMaxRoundTrip); and OutputView agrees with Output.
#pragma once

#include <cstring>
#include <span>
#include <tuple>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "tests/fuzz/fuzz_support.h"

namespace husk::fuzz {

namespace proto = husk::agent::proto;

inline constexpr size_t kMaxRoundTrip = 64 * 1024;

template <typename M>
void check_decode_as(const proto::FrameView& frame, proto::Status& own) {
  M msg;
  const proto::Status s = proto::decode(frame, msg);
  if (frame.type != static_cast<uint16_t>(M::kType)) {
    FUZZ_CHECK(s == proto::Status::kWrongType);
    return;
  }
  FUZZ_CHECK(s == proto::Status::kOk || s == proto::Status::kMalformed);
  own = s;
  // Encoding again is the slow part (the Writer goes byte by byte): frames
  // up to 64 KiB show the property, larger ones only cost executions.
  if (s != proto::Status::kOk || frame.payload.size() > kMaxRoundTrip) return;
  std::vector<uint8_t> again;
  FUZZ_CHECK(proto::append_frame(again, frame.id, msg) == proto::Status::kOk);
  // Safe: peek_frame made `payload` a view kHeaderSize bytes into the frame.
  const uint8_t* start = frame.payload.data() - proto::kHeaderSize;
  FUZZ_CHECK(again.size() == frame.size && std::memcmp(again.data(), start, frame.size) == 0);
}

// Returns the frame's decode status as its own type.
inline proto::Status check_frame_codec(const proto::FrameView& frame) {
  proto::Status own = proto::Status::kUnknownType;
  std::apply([&](auto... m) { (check_decode_as<decltype(m)>(frame, own), ...); }, proto::AllMessages{});
  if (frame.type == static_cast<uint16_t>(proto::MsgType::kOutput)) {
    proto::Output copy;
    proto::OutputView view;
    const proto::Status a = proto::decode(frame, copy);
    const proto::Status b = proto::decode(frame, view);
    FUZZ_CHECK(a == b);
    if (a == proto::Status::kOk) {
      FUZZ_CHECK(copy.stream == view.stream && copy.data.size() == view.data.size());
      FUZZ_CHECK(view.data.empty() || std::memcmp(copy.data.data(), view.data.data(), view.data.size()) == 0);
    }
  }
  return own;
}

// Walks the frames at the start of `bytes` as a receiver would: known ones
// go to `fn`, unknown types are skipped; stops where more bytes are needed
// or the stream is broken. Returns the bytes consumed and the last status.
template <typename Fn>
size_t for_each_frame(std::span<const uint8_t> bytes, proto::Status& last, Fn&& fn) {
  size_t off = 0;
  for (;;) {
    proto::FrameView frame;
    last = proto::peek_frame(bytes.subspan(off), frame);
    if (last == proto::Status::kOk || last == proto::Status::kUnknownType) {
      FUZZ_CHECK(frame.size >= proto::kHeaderSize && frame.size <= bytes.size() - off);
      FUZZ_CHECK(frame.size - proto::kHeaderSize <= proto::kMaxPayload);
      if (last == proto::Status::kOk) fn(frame);
      off += frame.size;
      continue;
    }
    FUZZ_CHECK(last == proto::Status::kNeedMore || last == proto::Status::kTooLarge ||
               last == proto::Status::kMalformed);
    return off;
  }
}

}  // namespace husk::fuzz
