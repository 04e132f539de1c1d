#include "runtime/serve/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace husk::serve {

namespace {

sockaddr_un unix_sockaddr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // parse_listen_address checked that the path and its NUL fit.
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// A socket file at `path` from an earlier server: refused while a server
// answers on it, removed when none does (ECONNREFUSED: nobody listens).
Result<void> clear_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno("--listen unix:" + path);
  }
  if (!S_ISSOCK(st.st_mode)) return fail(fmt::format("--listen unix:{}: the path exists and is not a socket", path));
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return fail_errno("socket(AF_UNIX)");
  const sockaddr_un addr = unix_sockaddr(path);
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return fail(fmt::format("--listen unix:{}: another server is listening there", path));
  }
  if (errno != ECONNREFUSED) return fail_errno(fmt::format("--listen unix:{}: connect to the old socket", path));
  if (::unlink(path.c_str()) != 0) return fail_errno(fmt::format("--listen unix:{}: remove the stale socket", path));
  return {};
}

}  // namespace

Result<Listener> Listener::open(const ListenAddress& address, int backlog) {
  if (address.kind == ListenAddress::Kind::kUnix) {
    HUSK_TRY(clear_stale_socket(address.path));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail_errno("socket(AF_UNIX)");
    const sockaddr_un addr = unix_sockaddr(address.path);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      return fail_errno("bind unix:" + address.path);
    }
    Listener l(address, std::move(fd));
    struct stat st {};
    if (::stat(address.path.c_str(), &st) == 0) {
      l.socket_dev_ = st.st_dev;
      l.socket_ino_ = st.st_ino;
      l.remove_socket_ = true;
    }
    if (::listen(l.fd_.get(), backlog) != 0) return fail_errno("listen on unix:" + address.path);
    return l;
  }

  const int family = address.ipv6 ? AF_INET6 : AF_INET;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno(address.ipv6 ? "socket(AF_INET6)" : "socket(AF_INET)");
  // A restarted server binds again at once (connections of the old one may
  // sit in TIME_WAIT).
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) return fail_errno("SO_REUSEADDR");
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (address.ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(address.port);
    if (::inet_pton(AF_INET6, address.host.c_str(), &a->sin6_addr) != 1) return fail("bad address " + address.host);
    length = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(address.port);
    if (::inet_pton(AF_INET, address.host.c_str(), &a->sin_addr) != 1) return fail("bad address " + address.host);
    length = sizeof(*a);
  }
  const std::string where = describe(address, address.port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) return fail_errno("bind " + where);
  if (::listen(fd.get(), backlog) != 0) return fail_errno("listen on " + where);
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
    return fail_errno("getsockname of " + where);
  }
  Listener l(address, std::move(fd));
  l.port_ = ntohs(address.ipv6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                               : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  return l;
}

Listener::Listener(Listener&& other) noexcept
    : address_(std::move(other.address_)),
      fd_(std::move(other.fd_)),
      port_(other.port_),
      socket_dev_(other.socket_dev_),
      socket_ino_(other.socket_ino_),
      remove_socket_(std::exchange(other.remove_socket_, false)) {}

Listener::~Listener() {
  if (!remove_socket_) return;
  struct stat st {};
  if (::lstat(address_.path.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    ::unlink(address_.path.c_str());
  }
}

}  // namespace husk::serve
