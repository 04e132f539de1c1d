// SHA-256 of bytes, as lowercase hex (Debian's nettle does the hashing).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace husk {

class Sha256 {
 public:
  Sha256();
  static constexpr size_t kDigestBytes = 32;
  void update(std::string_view data);
  // Both finish; the object starts over. digest() allocates nothing.
  [[nodiscard]] std::array<uint8_t, kDigestBytes> digest();
  [[nodiscard]] std::string hex();

 private:
  alignas(8) unsigned char state_[128];
};

[[nodiscard]] std::string sha256_hex(std::string_view data);

}  // namespace husk
