// The keeper's control socket: how `husk-oci start` and `kill` reach a
// container's keeper process (keeper.h). A SOCK_SEQPACKET Unix socket in
// the container's state folder (mode 0700, so only its owner connects);
// one request per connection, one message each way:
//   "start"        -> "ok" once the process is being started
//   "kill <signo>" -> "ok" once the signal is on its way to the process
// and "error <message>" when the keeper refuses. Requests are checked
// (parse_control): anything else is refused.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::oci {

struct ControlRequest {
  enum class Kind { kStart, kKill };
  Kind kind = Kind::kStart;
  int signo = 0;  // kKill: 1 to 64
};

[[nodiscard]] Result<ControlRequest> parse_control(std::string_view message);
[[nodiscard]] std::string format_control(const ControlRequest& request);

// A signal by number ("15") or name ("TERM", "SIGTERM", "RTMIN+2"),
// as `kill` takes it. EINVAL otherwise.
[[nodiscard]] Result<int> parse_signal(const std::string& text);

// A socket path may be longer than sun_path's 108 bytes (containerd's state
// folders with 64-character ids come close): such a path is reached through
// its folder opened O_PATH, as /proc/self/fd/N/NAME. `dir` keeps that
// folder open for as long as the address is used.
struct UnixAddress {
  std::string path;  // what to bind or connect to
  UniqueFd dir;
};
[[nodiscard]] Result<UnixAddress> unix_address(const std::string& path);

class ControlServer {
 public:
  // Binds and listens (an old socket file at `path` is replaced).
  [[nodiscard]] static Result<ControlServer> listen(const std::string& path);
  [[nodiscard]] int fd() const { return fd_.get(); }
  // The next request, its connection kept for the answer; nullopt when
  // none is waiting or the peer sent nothing valid (it is answered with an
  // error and closed).
  struct Pending {
    UniqueFd conn;
    ControlRequest request;
  };
  [[nodiscard]] std::optional<Pending> accept();
  static void answer(Pending& pending, const Result<void>& outcome);

 private:
  explicit ControlServer(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Sends `request` to the keeper at `path` and waits up to `timeout` for
// its answer. ENOENT/ECONNREFUSED when no keeper listens there.
[[nodiscard]] Result<void> control_call(const std::string& path, const ControlRequest& request,
                                        std::chrono::milliseconds timeout);

}  // namespace husk::oci
