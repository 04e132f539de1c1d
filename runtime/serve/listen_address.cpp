#include "runtime/serve/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>

#include <fmt/format.h>

namespace husk::serve {

namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr const char* kLoopbackOnly =
    "husk serve listens only on a Unix socket (unix:PATH) or a loopback address (127.0.0.1:PORT, "
    "localhost:PORT, [::1]:PORT); to serve other machines, put a proxy in front of it";

Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return fail(fmt::format("--listen {}: the port must be a number from 0 to 65535 (0: any free port)", whole));
  }
  return static_cast<uint16_t>(value);
}

Result<ListenAddress> unix_address(std::string_view path, std::string_view whole) {
  if (path.empty()) return fail(fmt::format("--listen {}: the Unix socket's path is empty", whole));
  // sun_path holds the path and its terminating NUL.
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail(fmt::format("--listen {}: a Unix socket's path has at most {} bytes", whole,
                            sizeof(sockaddr_un{}.sun_path) - 1));
  }
  if (path.find('\0') != std::string_view::npos) return fail(fmt::format("--listen: the path holds a NUL byte"));
  ListenAddress a;
  a.kind = ListenAddress::Kind::kUnix;
  a.path = std::string(path);
  return a;
}

}  // namespace

Result<ListenAddress> parse_listen_address(std::string_view text) {
  if (text.rfind(kUnixPrefix, 0) == 0) return unix_address(text.substr(kUnixPrefix.size()), text);
  if (text.find('/') != std::string_view::npos) return unix_address(text, text);

  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return fail(fmt::format("--listen {}: expected [ADDRESS]:PORT", text));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    bracketed = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(fmt::format("--listen {}: expected unix:PATH, a path with a '/', or HOST:PORT", text));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail(fmt::format("--listen {}: an IPv6 address goes in brackets: [::1]:PORT", text));
    }
  }
  HUSK_TRY_ASSIGN(const uint16_t number, parse_port(port, text));
  ListenAddress a;
  a.kind = ListenAddress::Kind::kTcp;
  a.port = number;
  if (host == "localhost") {
    a.host = "127.0.0.1";
    return a;
  }
  const std::string name(host);
  const auto not_loopback = [&] {
    return fail(fmt::format("--listen {}: {} is not loopback: {}", text, host, kLoopbackOnly));
  };
  in_addr v4{};
  in6_addr v6{};
  if (!bracketed && ::inet_pton(AF_INET, name.c_str(), &v4) == 1) {
    // 127.0.0.0/8 is loopback.
    if ((ntohl(v4.s_addr) >> 24) != 127) return not_loopback();
    a.host = name;
    return a;
  }
  if (bracketed && ::inet_pton(AF_INET6, name.c_str(), &v6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6)) return not_loopback();
    a.host = name;
    a.ipv6 = true;
    return a;
  }
  return fail(fmt::format("--listen {}: '{}' is not a numeric loopback address or localhost: {}", text, host,
                          kLoopbackOnly));
}

std::string describe(const ListenAddress& address, uint16_t port) {
  if (address.kind == ListenAddress::Kind::kUnix) return "unix:" + address.path;
  return address.ipv6 ? fmt::format("[{}]:{}", address.host, port) : fmt::format("{}:{}", address.host, port);
}

std::string url_of(const ListenAddress& address, uint16_t port) {
  if (address.kind == ListenAddress::Kind::kUnix) return "http://localhost/";
  return "http://" + describe(address, port) + "/";
}

}  // namespace husk::serve
