// SHA-256 of bytes, as lowercase hex (Debian's nettle does the hashing).
#pragma once

#include <string>
#include <string_view>

namespace husk {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  [[nodiscard]] std::string hex();  // finishes; the object starts over

 private:
  alignas(8) unsigned char state_[128];
};

[[nodiscard]] std::string sha256_hex(std::string_view data);

}  // namespace husk
