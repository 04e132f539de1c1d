// HttpFront: the HTTP side of `husk serve`, on cpp-httplib (Debian's
// libcpp-httplib-dev). It accepts on a socket made by Listener, reads each
// POST body (any path) up to --max-body, holds one of --max-concurrent
// places for the request or answers 503 at once, and hands the body to the
// Call, whose HttpAnswer it sends. Any other method is 405. One line per
// request goes to the log. stop() stops accepting and returns once every
// request in flight has had its answer.
//
// The body is read as bytes whatever its Content-Type: the library would
// otherwise parse a form body into parameters (and cap it at 8 KiB) or a
// multipart one into files; multipart is refused (415).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "runtime/common/joining_thread.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/serve/answer.h"
#include "runtime/serve/concurrency_limiter.h"

namespace husk::serve {

struct FrontOptions {
  size_t max_concurrent = 4;
  uint64_t max_body = 16ull << 20;
  // Connection threads beyond max_concurrent: they answer the 503s, 413s
  // and idle keep-alive connections while the others run functions.
  size_t spare_threads = 8;
};

struct CallRequest {
  std::string body;
  bool json = false;  // wants_json()
  std::chrono::steady_clock::time_point arrived;
};

class HttpFront {
 public:
  using Call = std::function<HttpAnswer(CallRequest request)>;
  using Log = std::function<void(std::string_view)>;

  // Starts serving on `listening` (bound and listening) in a thread of its
  // own; returns once the server accepts.
  [[nodiscard]] static Result<std::unique_ptr<HttpFront>> start(UniqueFd listening, const FrontOptions& options,
                                                                Call call, Log log);
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // No new connections; returns when every request in flight has been
  // answered. Idempotent.
  void stop();
  [[nodiscard]] size_t in_flight() const { return limiter_.in_flight(); }

 private:
  class Impl;
  HttpFront(const FrontOptions& options, Call call, Log log);

  const FrontOptions options_;
  const Call call_;
  const Log log_;
  ConcurrencyLimiter limiter_;
  std::unique_ptr<Impl> impl_;
  JoiningThread thread_;
};

}  // namespace husk::serve
