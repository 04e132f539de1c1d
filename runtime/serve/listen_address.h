// ListenAddress: where `husk serve` listens (docs/serve.md, "--listen").
// A Unix socket ("unix:/run/fn.sock", or any text with a '/': "./fn.sock")
// or a loopback TCP address ("127.0.0.1:8080", "localhost:8080",
// "[::1]:8080"; port 0 lets the kernel choose). Every other address is
// refused: husk serve runs code for whoever can connect, so reaching it
// from another machine is a decision for a proxy in front of it, not a
// default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/common/result.h"

namespace husk::serve {

struct ListenAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix: the socket's path, as given
  std::string host;  // kTcp: a numeric loopback address ("127.0.0.1", "::1")
  uint16_t port = 0; // kTcp: 0 means any free port
  bool ipv6 = false;
};

[[nodiscard]] Result<ListenAddress> parse_listen_address(std::string_view text);

// "unix:/run/fn.sock", "127.0.0.1:8080", "[::1]:8080": the form the parser
// takes back, with `port` for the port (the one the kernel chose).
[[nodiscard]] std::string describe(const ListenAddress& address, uint16_t port);
// The URL a client uses: "http://127.0.0.1:8080/", or for a Unix socket
// "http://localhost/" (curl --unix-socket PATH http://localhost/).
[[nodiscard]] std::string url_of(const ListenAddress& address, uint16_t port);

}  // namespace husk::serve
