#include "runtime/common/sha256.h"

#include <nettle/sha2.h>

namespace husk {

namespace {
static_assert(sizeof(sha256_ctx) <= 128, "Sha256::state_ too small for nettle's sha256_ctx");
static_assert(Sha256::kDigestBytes == SHA256_DIGEST_SIZE);
sha256_ctx* ctx(unsigned char* state) { return reinterpret_cast<sha256_ctx*>(state); }
}  // namespace

Sha256::Sha256() { sha256_init(ctx(state_)); }

void Sha256::update(std::string_view data) {
  sha256_update(ctx(state_), data.size(), reinterpret_cast<const uint8_t*>(data.data()));
}

std::array<uint8_t, Sha256::kDigestBytes> Sha256::digest() {
  std::array<uint8_t, kDigestBytes> out{};
  sha256_digest(ctx(state_), out.size(), out.data());
  return out;
}

std::string Sha256::hex() {
  static const char* const kHex = "0123456789abcdef";
  std::string out;
  for (uint8_t b : digest()) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hex();
}

}  // namespace husk
