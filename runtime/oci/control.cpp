#include "runtime/oci/control.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "runtime/common/deadline.h"

namespace husk::oci {

namespace {

constexpr size_t kMaxMessage = 4096;

Result<sockaddr_un> sockaddr_for(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return fail("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Receives one message within `deadline`.
Result<std::string> receive(int fd, Deadline deadline) {
  const int rc = poll_until(fd, POLLIN, deadline);
  if (rc < 0) return fail_errno("poll the control socket");
  if (rc == 0) return Unexpected(Error{ETIMEDOUT, "no answer from the container's keeper"});
  std::string buf(kMaxMessage, '\0');
  const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  if (n < 0) return fail_errno("receive from the control socket");
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace

Result<ControlRequest> parse_control(std::string_view message) {
  if (message == "start") return ControlRequest{ControlRequest::Kind::kStart, 0};
  constexpr std::string_view kKill = "kill ";
  if (message.substr(0, kKill.size()) == kKill) {
    const std::string_view num = message.substr(kKill.size());
    int signo = 0;
    const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), signo);
    if (ec == std::errc() && end == num.data() + num.size() && signo >= 1 && signo <= 64) {
      return ControlRequest{ControlRequest::Kind::kKill, signo};
    }
  }
  return fail(fmt::format("unknown control request '{}'", message.substr(0, 64)));
}

std::string format_control(const ControlRequest& request) {
  return request.kind == ControlRequest::Kind::kStart ? "start" : fmt::format("kill {}", request.signo);
}

Result<int> parse_signal(const std::string& text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const long n = text.size() <= 3 ? std::stol(text) : 0;
    if (n >= 1 && n <= 64) return static_cast<int>(n);
  } else {
    std::string name = text;
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.rfind("SIG", 0) == 0) name = name.substr(3);
    for (int s = 1; s < 32; ++s) {
      const char* abbrev = ::sigabbrev_np(s);
      if (abbrev != nullptr && name == abbrev) return s;
    }
    if (name == "RTMIN") return SIGRTMIN;
    if (name.rfind("RTMIN+", 0) == 0) {
      // Digits only: atoi would take "RTMIN+x" as RTMIN and "RTMIN+-5" as
      // a standard signal below it.
      const std::string_view num = std::string_view(name).substr(6);
      int offset = -1;
      const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), offset);
      if (ec == std::errc() && end == num.data() + num.size() && offset >= 0 && offset <= SIGRTMAX - SIGRTMIN) {
        return SIGRTMIN + offset;
      }
    }
  }
  return Unexpected(Error{EINVAL, "unknown signal '" + text + "'"});
}

Result<UnixAddress> unix_address(const std::string& path) {
  UnixAddress out;
  if (path.size() < sizeof(sockaddr_un::sun_path)) {
    out.path = path;
    return out;
  }
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return fail("socket path too long: " + path);
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  out.dir = UniqueFd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!out.dir) return fail_errno("open " + dir);
  out.path = fmt::format("/proc/self/fd/{}/{}", out.dir.get(), path.substr(slash + 1));
  return out;
}

Result<ControlServer> ControlServer::listen(const std::string& path) {
  HUSK_TRY_ASSIGN(const UnixAddress where, unix_address(path));
  HUSK_TRY_ASSIGN(const sockaddr_un addr, sockaddr_for(where.path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail_errno("control socket");
  ::unlink(where.path.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("bind " + path);
  }
  if (::listen(fd.get(), 16) != 0) return fail_errno("listen on " + path);
  return ControlServer(std::move(fd));
}

std::optional<ControlServer::Pending> ControlServer::accept() {
  UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) return std::nullopt;
  // The client sends its request right after connecting; one that does
  // not within a second is dropped, so no client holds the keeper.
  auto message = receive(conn.get(), Deadline::after(std::chrono::seconds(1)));
  if (!message) return std::nullopt;
  auto request = parse_control(*message);
  if (!request) {
    Pending refused{std::move(conn), {}};
    answer(refused, Unexpected(request.error()));
    return std::nullopt;
  }
  return Pending{std::move(conn), *request};
}

void ControlServer::answer(Pending& pending, const Result<void>& outcome) {
  const std::string text = outcome ? std::string("ok") : "error " + outcome.error().message;
  // A client that went away misses its answer; nothing else to do.
  (void)!::send(pending.conn.get(), text.data(), std::min(text.size(), kMaxMessage), MSG_NOSIGNAL | MSG_DONTWAIT);
  pending.conn.reset();
}

Result<void> control_call(const std::string& path, const ControlRequest& request,
                          std::chrono::milliseconds timeout) {
  const Deadline deadline = Deadline::after(timeout);
  HUSK_TRY_ASSIGN(const UnixAddress where, unix_address(path));
  HUSK_TRY_ASSIGN(const sockaddr_un addr, sockaddr_for(where.path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("control socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("connect to the container's keeper at " + path);
  }
  const std::string text = format_control(request);
  if (::send(fd.get(), text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    return fail_errno("send to the container's keeper");
  }
  HUSK_TRY_ASSIGN(const std::string answer, receive(fd.get(), deadline));
  if (answer == "ok") return {};
  if (answer.rfind("error ", 0) == 0) return fail(answer.substr(6));
  if (answer.empty()) return fail("the container's keeper closed the connection without an answer");
  return fail("unexpected answer from the container's keeper: " + answer.substr(0, 64));
}

}  // namespace husk::oci
