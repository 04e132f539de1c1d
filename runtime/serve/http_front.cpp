#include "runtime/serve/http_front.h"

#include <pthread.h>

#include <atomic>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "runtime/serve/http_status.h"

namespace husk::serve {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStartTimeout = std::chrono::seconds(5);

// httplib::Server on a socket bound elsewhere (Listener): the library
// binds its own in bind_to_port, and takes one through its protected
// svr_sock_ otherwise; listen_after_bind() then accepts on it and
// stop() shuts it down and closes it.
class PreboundServer : public httplib::Server {
 public:
  bool serve_on(UniqueFd fd) {
    svr_sock_ = fd.release();
    return listen_after_bind();
  }
};

void send(httplib::Response& res, HttpAnswer answer) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  res.set_header("Content-Type", answer.content_type);
  res.body = std::move(answer.body);
}

}  // namespace

class HttpFront::Impl {
 public:
  PreboundServer server;
  std::atomic<bool> ended{false};
};

HttpFront::HttpFront(const FrontOptions& options, Call call, Log log)
    : options_(options), call_(std::move(call)), log_(std::move(log)), limiter_(options.max_concurrent),
      impl_(std::make_unique<Impl>()) {}

HttpFront::~HttpFront() { stop(); }

Result<std::unique_ptr<HttpFront>> HttpFront::start(UniqueFd listening, const FrontOptions& options, Call call,
                                                    Log log) {
  std::unique_ptr<HttpFront> front(new HttpFront(options, std::move(call), std::move(log)));
  HttpFront* self = front.get();
  httplib::Server& server = front->impl_->server;

  const size_t threads = options.max_concurrent + options.spare_threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // A body with a Content-Length over the limit is skipped by the library
  // (413); a chunked or compressed one is counted by the reader below.
  server.set_payload_max_length(options.max_body);

  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "POST") return httplib::Server::HandlerResponse::Unhandled;
    send(res, text_answer(kStatusMethodNotAllowed, "husk serve: POST the function's stdin to any path\n"));
    res.set_header("Allow", "POST");
    return httplib::Server::HandlerResponse::Handled;
  });

  server.Post(".*", [self](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
    const auto arrived = Clock::now();
    if (req.is_multipart_form_data()) {
      // Read to its end (discarded) so that the connection stays in step.
      reader([](const httplib::MultipartFormData&) { return true; }, [](const char*, size_t) { return true; });
      send(res, text_answer(kStatusUnsupportedMedia,
                            "husk serve: a multipart/form-data body is not a function's stdin: send the bytes as "
                            "they are (curl --data-binary @FILE)\n"));
      return;
    }
    // The place is taken before the body is read, and the body is read
    // (not kept) even when there is none: the answer must follow the
    // whole request on the connection.
    std::optional<ConcurrencyLimiter::Slot> slot = self->limiter_.try_acquire();
    std::string body;
    uint64_t seen = 0;
    bool too_big = false;
    const bool whole = reader([&](const char* data, size_t n) {
      seen += n;
      if (seen > self->options_.max_body) {
        too_big = true;
        return false;
      }
      if (slot) body.append(data, n);
      return true;
    });
    if (!whole) {
      if (too_big || res.status == kStatusBodyTooLarge) {
        send(res, text_answer(kStatusBodyTooLarge, fmt::format("husk serve: the request body is over --max-body ({} "
                                                               "bytes)\n", self->options_.max_body)));
      } else {
        send(res, text_answer(kStatusBadRequest, "husk serve: the request body could not be read\n"));
      }
      return;
    }
    if (!slot) {
      send(res, busy_answer(self->limiter_.in_flight(), self->limiter_.limit()));
      return;
    }
    CallRequest request{std::move(body), wants_json(req.get_param_value("result"), req.get_header_value("Accept")),
                        arrived};
    send(res, self->call_(std::move(request)));
  });

  // The library's own refusals (a bad request line, 404 cannot happen)
  // get a line of text too; answers from above already have a body.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send(res, text_answer(res.status, fmt::format("husk serve: HTTP {} {}\n", res.status, reason_phrase(res.status))));
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send(res, text_answer(kStatusVmFailed, fmt::format("husk serve: internal error: {}\n", what)));
  });
  server.set_logger([self](const httplib::Request& req, const httplib::Response& res) {
    if (!self->log_) return;
    const std::string verdict = res.get_header_value("X-Husk-Verdict");
    const std::string ms = res.get_header_value("X-Husk-Request-Ms");
    self->log_(fmt::format("{} {} {} {} {}{}", header_value(req.method, 16), header_value(req.path, 200), res.status,
                           verdict.empty() ? "-" : verdict, ms.empty() ? "-" : ms, ms.empty() ? "" : " ms"));
  });

  Impl* impl = front->impl_.get();
  auto fd = std::make_shared<UniqueFd>(std::move(listening));
  HUSK_TRY_ASSIGN(front->thread_, JoiningThread::start("HTTP server", [impl, fd] {
                    ::pthread_setname_np(::pthread_self(), "husk-http");
                    (void)impl->server.serve_on(std::move(*fd));
                    impl->ended = true;
                  }));
  const auto until = Clock::now() + kStartTimeout;
  while (!server.is_running() && !impl->ended && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!server.is_running()) return fail("the HTTP server did not start accepting");
  return front;
}

void HttpFront::stop() {
  // stop() is a no-op before the server runs and after it has stopped.
  impl_->server.stop();
  thread_.join();
}

}  // namespace husk::serve
