// Tests for runtime/serve/http_front.h: the real HTTP server (cpp-httplib)
// on a real socket with a fake function behind it, driven by httplib's
// client: bodies reach the function whole and as bytes, answers carry
// their status and headers, the concurrency limit answers 503 at once,
// --max-body answers 413 (with a length, and chunked), other methods 405,
// multipart 415, one log line per request, and stop() lets a request in
// flight finish.
#include "runtime/serve/http_front.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <httplib.h>

#include "runtime/serve/listener.h"
#include "tests/support/temp_dir.h"

namespace husk::serve {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

// A gate the fake function waits at until the test opens it.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  int waiting = 0;
  void wait() {
    std::unique_lock lock(mutex);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [this] { return open; });
  }
  void wait_for_waiters(int n) {
    std::unique_lock lock(mutex);
    cv.wait_for(lock, 5s, [&] { return waiting >= n; });
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
};

// An HttpFront on 127.0.0.1:<free port> whose function upper-cases the
// body (or waits at the gate first when the body starts with "wait").
struct Fixture {
  Gate gate;
  std::mutex log_mutex;
  std::vector<std::string> log;
  std::vector<CallRequest> calls;
  std::unique_ptr<HttpFront> front;
  uint16_t port = 0;

  explicit Fixture(FrontOptions options = {}) {
    auto address = parse_listen_address("127.0.0.1:0");
    REQUIRE(address);
    auto listener = Listener::open(*address);
    REQUIRE(listener);
    port = listener->port();
    auto started = HttpFront::start(
        listener->take_fd(), options,
        [this](CallRequest r) {
          if (r.body.rfind("wait", 0) == 0) gate.wait();
          {
            std::lock_guard lock(log_mutex);
            calls.push_back(r);
          }
          std::string upper = r.body;
          for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          HttpAnswer a;
          a.status = r.body == "fail" ? 500 : 200;
          a.content_type = r.json ? "application/json" : "application/octet-stream";
          a.body = r.json ? "{\"verdict\":\"OK\"}" : upper;
          a.headers.emplace_back("X-Husk-Verdict", r.body == "fail" ? "RE" : "OK");
          a.headers.emplace_back("X-Husk-Request-Ms", "7");
          return a;
        },
        [this](std::string_view line) {
          std::lock_guard lock(log_mutex);
          log.emplace_back(line);
        });
    REQUIRE(started);
    front = std::move(*started);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    return c;
  }
  // The lines so far, once there are `n` (a line is written after its
  // answer is sent, so the client may see the answer first).
  std::vector<std::string> log_lines(size_t n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      {
        std::lock_guard lock(log_mutex);
        if (log.size() >= n || std::chrono::steady_clock::now() > until) return log;
      }
      std::this_thread::sleep_for(1ms);
    }
  }
};

TEST_CASE("a POST body reaches the function whole and its answer comes back", "[unit][serve]") {
  Fixture f;
  auto c = f.client();
  auto r = c.Post("/any/path?x=1", "hello, world", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "HELLO, WORLD");
  CHECK(r->get_header_value("X-Husk-Verdict") == "OK");
  CHECK(r->get_header_value("Content-Type") == "application/octet-stream");

  auto failed = c.Post("/", "fail", "text/plain");
  REQUIRE(failed);
  CHECK(failed->status == 500);
  CHECK(failed->body == "FAIL");  // the function's own body, kept

  // ?result=json and Accept: application/json.
  auto j = c.Post("/?result=json", "x", "text/plain");
  REQUIRE(j);
  CHECK(j->get_header_value("Content-Type") == "application/json");
  auto accept = c.Post("/", httplib::Headers{{"Accept", "application/json"}}, "x", "text/plain");
  REQUIRE(accept);
  CHECK(accept->body == "{\"verdict\":\"OK\"}");
  REQUIRE(f.calls.size() == 4);
  CHECK_FALSE(f.calls[0].json);
  CHECK(f.calls[2].json);
  CHECK(f.calls[3].json);

  // A line is written after its answer goes out, by the thread that
  // served it: the next request's line may come first.
  const auto log = f.log_lines(4);
  REQUIRE(log.size() == 4);
  CHECK(std::count(log.begin(), log.end(), "POST /any/path 200 OK 7 ms") == 1);
  CHECK(std::count(log.begin(), log.end(), "POST / 500 RE 7 ms") == 1);
  CHECK(std::count(log.begin(), log.end(), "POST / 200 OK 7 ms") == 2);
}

TEST_CASE("a body is bytes whatever its type: a large form body is not parsed or cut, NULs pass", "[unit][serve]") {
  Fixture f;
  auto c = f.client();
  std::string form(100'000, 'a');
  form += "&result=json";
  auto r = c.Post("/", form, "application/x-www-form-urlencoded");
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(f.calls.size() == 1);
  CHECK(f.calls[0].body == form);
  CHECK_FALSE(f.calls[0].json);  // a body's "result=json" is not the query's

  const std::string binary("a\0b\xff", 4);
  auto b = c.Post("/", binary, "application/octet-stream");
  REQUIRE(b);
  REQUIRE(f.calls.size() == 2);
  CHECK(f.calls[1].body == binary);

  httplib::MultipartFormDataItems items{{"file", "data", "x.txt", "text/plain"}};
  auto multipart = c.Post("/", items);
  REQUIRE(multipart);
  CHECK(multipart->status == 415);
  CHECK_THAT(multipart->body, Contains("--data-binary"));
  CHECK(f.calls.size() == 2);
}

TEST_CASE("over --max-concurrent a request gets 503 at once, and the others finish", "[unit][serve]") {
  FrontOptions options;
  options.max_concurrent = 1;
  Fixture f(options);
  auto slow = std::async(std::launch::async, [&] {
    auto c = f.client();
    auto r = c.Post("/", "wait for it", "text/plain");
    return r ? r->status : -1;
  });
  f.gate.wait_for_waiters(1);
  CHECK(f.front->in_flight() == 1);
  auto c = f.client();
  const auto before = std::chrono::steady_clock::now();
  auto busy = c.Post("/", "second", "text/plain");
  REQUIRE(busy);
  CHECK(std::chrono::steady_clock::now() - before < 2s);
  CHECK(busy->status == 503);
  CHECK(busy->get_header_value("Retry-After") == "1");
  CHECK(busy->body == "husk serve: busy, 1 requests in flight (--max-concurrent 1)\n");
  f.gate.release();
  CHECK(slow.get() == 200);
  CHECK(f.front->in_flight() == 0);
  auto after = c.Post("/", "third", "text/plain");
  REQUIRE(after);
  CHECK(after->status == 200);
}

TEST_CASE("a body over --max-body is 413, with a length or chunked; other methods are 405", "[unit][serve]") {
  FrontOptions options;
  options.max_body = 1000;
  Fixture f(options);
  auto c = f.client();
  auto fits = c.Post("/", std::string(1000, 'x'), "text/plain");
  REQUIRE(fits);
  CHECK(fits->status == 200);
  auto over = c.Post("/", std::string(1001, 'x'), "text/plain");
  REQUIRE(over);
  CHECK(over->status == 413);
  CHECK_THAT(over->body, Contains("over --max-body (1000 bytes)"));

  auto chunked = c.Post(
      "/",
      [](size_t offset, httplib::DataSink& sink) {
        if (offset >= 5000) {
          sink.done();
          return true;
        }
        const std::string chunk(500, 'y');
        return sink.write(chunk.data(), chunk.size());
      },
      "text/plain");
  if (chunked) {
    // The reader stops at the limit; the answer is 413 (a client still
    // sending may see the connection close instead).
    CHECK(chunked->status == 413);
  }
  CHECK(f.calls.size() == 1);

  auto fresh = f.client();
  auto get = fresh.Get("/");
  REQUIRE(get);
  CHECK(get->status == 405);
  CHECK(get->get_header_value("Allow") == "POST");
  CHECK_THAT(get->body, StartsWith("husk serve: POST"));
}

TEST_CASE("stop() waits for the request in flight, which gets its answer; then nothing connects", "[unit][serve]") {
  Fixture f;
  auto slow = std::async(std::launch::async, [&] {
    auto c = f.client();
    auto r = c.Post("/", "wait, then answer", "text/plain");
    return r ? r->body : std::string("no answer");
  });
  f.gate.wait_for_waiters(1);
  auto stopping = std::async(std::launch::async, [&] { f.front->stop(); });
  CHECK(stopping.wait_for(200ms) == std::future_status::timeout);  // it waits for the request
  f.gate.release();
  CHECK(slow.get() == "WAIT, THEN ANSWER");
  CHECK(stopping.wait_for(10s) == std::future_status::ready);
  auto c = f.client();
  c.set_connection_timeout(1, 0);
  CHECK_FALSE(c.Post("/", "late", "text/plain"));
}

TEST_CASE("the front serves a Unix socket too", "[unit][serve]") {
  husk::test::TempDir dir;
  const std::string path = dir.file("fn.sock");
  auto listener = Listener::open(*parse_listen_address("unix:" + path));
  REQUIRE(listener);
  auto front = HttpFront::start(
      listener->take_fd(), FrontOptions{},
      [](CallRequest r) {
        HttpAnswer a;
        a.content_type = "text/plain";
        a.body = "got " + r.body;
        return a;
      },
      nullptr);
  REQUIRE(front);
  httplib::Client c(path);
  c.set_address_family(AF_UNIX);
  auto r = c.Post("/", "it", "text/plain");
  REQUIRE(r);
  CHECK(r->body == "got it");
  (*front)->stop();
}

}  // namespace
}  // namespace husk::serve
