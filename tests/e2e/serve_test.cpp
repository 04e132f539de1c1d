// End-to-end tests of `husk serve` (docs/serve.md): the real husk serving
// tests/e2e/jobs/serve/fn.toml on real VMs, driven by real curl processes.
// A VM start takes seconds in the nested test host, so each case runs one
// husk serve through many requests:
// - a Unix socket with a pool of VMs restored from the function's snapshot
//   (the default start): stdin is the body and stdout the answer (a
//   200 KiB body of every byte value), the JSON result, a failing function's
//   500, a fresh VM per request (a file one request leaves is not there for
//   the next), 503 over --max-concurrent, and SIGTERM with a request in
//   flight: it still gets its answer, serve exits 0 and leaves nothing;
// - loopback TCP (port 0) without a pool, VMs booted (--start boot): a
//   request past --request-timeout gets 504 and its VM is gone at once;
//   SIGINT when idle exits 0.
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/children.h"
#include "tests/e2e/run_support.h"

using namespace husk::test;
using namespace husk::test::run;
using namespace std::chrono_literals;

namespace {

// A background `env TMPDIR=SANDBOX husk serve ...`, its stderr in a file;
// killed (and reaped) if a test leaves it running.
class ServeProcess {
 public:
  ServeProcess(Sandbox& sb, const std::vector<std::string>& extra) : err_path_(sb.dir.file("serve.err")) {
    std::vector<std::string> argv{"env", "TMPDIR=" + sb.tmp, husk_bin(), "serve", job_path("serve/fn.toml"),
                                  "--kernel", guest_file("vmlinux"), "--initrd", guest_file("initramfs.cpio")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(err, 2);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string err() const { return read_file(err_path_); }

  // Waits until stderr matches `pattern`; its first group (or the match).
  std::string wait_for(const std::string& pattern, std::chrono::seconds within) {
    const std::regex re(pattern);
    const auto until = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < until) {
      const std::string text = err();
      std::smatch m;
      if (std::regex_search(text, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
      if (finished()) break;
      std::this_thread::sleep_for(100ms);
    }
    INFO("husk serve's stderr: " << tail(err(), 4000));
    FAIL("husk serve never logged /" << pattern << "/");
    return {};
  }

  // Its exit status once it has ended within `within`; -1 if it has not.
  int wait_exit(std::chrono::seconds within) {
    const auto until = std::chrono::steady_clock::now() + within;
    while (!finished() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
    if (!exited_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }

  void signal(int sig) const { ::kill(pid_, sig); }

 private:
  bool finished() {
    if (exited_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return exited_;
  }

  std::string err_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  double seconds = 0;
  std::string curl_err;

  [[nodiscard]] std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// `curl -sS -i --data-binary @- [--unix-socket PATH] URL [EXTRA...]`, the
// body on curl's stdin; the status line, headers and body taken apart.
Reply curl(const std::string& unix_socket, const std::string& url, const std::string& body,
           const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{"curl", "-sS", "-i", "--max-time", "200", "--data-binary", "@-",
                                "-H", "Content-Type: application/octet-stream"};
  if (!unix_socket.empty()) argv.insert(argv.end(), {"--unix-socket", unix_socket});
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  const ProcessResult p = run_process(argv, 240, body);
  Reply r;
  r.seconds = p.seconds;
  r.curl_err = p.err;
  std::string out = p.out;
  // Interim 1xx answers (100 Continue) come first.
  while (true) {
    const size_t end = out.find("\r\n\r\n");
    if (end == std::string::npos) return r;
    std::string head = out.substr(0, end);
    out = out.substr(end + 4);
    std::smatch m;
    if (!std::regex_search(head, m, std::regex(R"(^HTTP/[0-9.]+ ([0-9]{3}))"))) return r;
    r.status = std::stoi(m[1].str());
    if (r.status >= 200) {
      size_t at = head.find("\r\n");
      while (at != std::string::npos) {
        const size_t next = head.find("\r\n", at + 2);
        const std::string line = head.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
        if (const size_t colon = line.find(':'); colon != std::string::npos) {
          std::string name = line.substr(0, colon);
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          r.headers[name] = line.substr(colon + 1 + (line.size() > colon + 1 && line[colon + 1] == ' ' ? 1 : 0));
        }
        at = next;
      }
      r.body = out;
      return r;
    }
  }
}

std::string upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}


void note(const std::string& line) { std::fprintf(stderr, "serve e2e: %s\n", line.c_str()); }

// The nested test host's init leaves the loopback interface down (nothing
// else there needs it); as root, bring it up. Elsewhere it is up already.
void loopback_up() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(fd, SIOCGIFFLAGS, &req) == 0 && (req.ifr_flags & IFF_UP) == 0) {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
    CHECK(::ioctl(fd, SIOCSIFFLAGS, &req) == 0);
  }
  ::close(fd);
}

}  // namespace

TEST_CASE("husk serve on a Unix socket, restored VMs: stdin/stdout, JSON, failure, fresh VMs, 503, SIGTERM in flight",
          "[e2e][serve]") {
  Sandbox sb;
  const std::string socket = sb.dir.file("fn.sock");
  ServeProcess serve(sb, {"--listen", "unix:" + socket, "--pool", "1", "--max-concurrent", "1",
                         "--snapshot-cache", sb.dir.file("snapshots")});
  serve.wait_for("listening on unix:", 240s);
  note("made its snapshot in " + serve.wait_for("snapshot ready in ([0-9]+) ms", 1s) + " ms");
  INFO("husk serve's stderr: " << tail(serve.err(), 4000));
  const std::string url = "http://localhost/fn";

  // stdin is the body, stdout the answer: 200 KiB of every byte value.
  std::string data;
  for (size_t i = 0; i < 200 * 1024; ++i) data += static_cast<char>((i * 7 + i / 256) % 256);
  const Reply ok = curl(socket, url, "upper\n" + data);
  INFO("curl: " << ok.curl_err);
  CHECK(ok.status == 200);
  CHECK(ok.body.size() == data.size());
  CHECK(ok.body == upper(data));
  CHECK(ok.header("x-husk-verdict") == "OK");
  CHECK(ok.header("x-husk-start") == "snapshot");
  CHECK(ok.header("x-husk-exit-code") == "0");
  CHECK_FALSE(ok.header("x-husk-request-ms").empty());
  note("a pooled VM (" + ok.header("x-husk-start") + "): " + ok.header("x-husk-request-ms") + " ms in husk serve, " +
       std::to_string(static_cast<int>(ok.seconds * 1000)) + " ms in curl");

  // The JSON result on request (a query, or Accept), with the same status.
  const Reply json_reply = curl(socket, url + "?result=json", "upper\nshout");
  CHECK(json_reply.status == 200);
  CHECK(json_reply.header("content-type") == "application/json");
  const json result = json::parse(json_reply.body, nullptr, false);
  REQUIRE(result.is_object());
  CHECK(result.at("verdict") == "OK");
  CHECK(result.at("steps").at(0).at("stdout") == "SHOUT");
  const json& t = result.at("timeline");
  note("its run: process ended at " + std::to_string(result.at("steps").at(0).value("end_ms", 0.0)) +
       " ms, shutdown asked at " + std::to_string(t.value("shutdown_ms", 0.0)) + " ms, VM gone at " +
       std::to_string(t.value("end_ms", 0.0)) + " ms (since run_job_on began)");
  const Reply accept = curl(socket, url, "fail\n", {"-H", "Accept: application/json"});
  CHECK(accept.status == 500);
  CHECK(json::parse(accept.body, nullptr, false).value("verdict", "") == "RE");

  // A failing function: 500, its stdout, the verdict and exit code.
  const Reply failed = curl(socket, url, "fail\n");
  CHECK(failed.status == 500);
  CHECK(failed.body == "failing on purpose\n");
  CHECK(failed.header("x-husk-verdict") == "RE");
  CHECK(failed.header("x-husk-exit-code") == "3");

  // A fresh VM each time: the file one request leaves is not there for the next.
  for (int i = 0; i < 2; ++i) {
    const Reply marker = curl(socket, url, "marker\n");
    CHECK(marker.status == 200);
    CHECK(marker.body == "fresh\n");
    note("marker request " + std::to_string(i + 1) + ": " + marker.header("x-husk-request-ms") + " ms");
  }

  // SIGQUIT: a status line, and serve goes on.
  serve.signal(SIGQUIT);
  serve.wait_for(R"(request\(s\) in flight; pool: [0-9]+ ready, 0 request\(s\) waiting for a VM)", 30s);

  // One request in flight (--max-concurrent 1): the next gets 503 at once.
  auto slow = std::async(std::launch::async, [&] { return curl(socket, url, "sleep\n8"); });
  std::this_thread::sleep_for(1500ms);
  const Reply busy = curl(socket, url, "upper\nx");
  CHECK(busy.status == 503);
  CHECK(busy.header("retry-after") == "1");
  CHECK(busy.body == "husk serve: busy, 1 requests in flight (--max-concurrent 1)\n");
  CHECK(busy.seconds < 5);

  // SIGTERM while it runs: no new connections, the request still gets its
  // answer, then husk serve exits 0 and leaves nothing behind.
  serve.signal(SIGTERM);
  serve.wait_for("SIGTERM: no new connections; 1 request\\(s\\) in flight", 30s);
  const Reply finished = slow.get();
  INFO("curl: " << finished.curl_err);
  CHECK(finished.status == 200);
  CHECK(finished.body == "slept\n");
  CHECK(serve.wait_exit(60s) == 0);
  CHECK_FALSE(fs::exists(socket));
  CHECK(contains(serve.err(), "husk serve: stopped"));
  // One log line per request: the 200s, the 500s, the 503.
  CHECK(contains(serve.err(), "husk serve: POST /fn 200 OK "));
  CHECK(contains(serve.err(), "husk serve: POST /fn 500 RE "));
  CHECK(contains(serve.err(), "husk serve: POST /fn 503 - "));
  check_nothing_left(sb);
  note("husk serve's log:\n" + serve.err());
}

TEST_CASE("husk serve on loopback TCP, booted VMs, no pool: past --request-timeout a request gets 504, its VM gone",
          "[e2e][serve]") {
  loopback_up();
  Sandbox sb;
  ServeProcess serve(sb, {"--listen", "127.0.0.1:0", "--pool", "0", "--request-timeout", "15s", "--start", "boot"});
  const std::string port = serve.wait_for(R"(listening on 127\.0\.0\.1:([0-9]+))", 60s);
  INFO("husk serve's stderr: " << tail(serve.err(), 4000));
  const std::string url = "http://127.0.0.1:" + port + "/";

  // No pool: the request waits for a VM started for it.
  const Reply ok = curl("", url, "upper\nover tcp");
  INFO("curl: " << ok.curl_err);
  CHECK(ok.status == 200);
  CHECK(ok.body == "OVER TCP");
  note("a VM started for the request (--pool 0, --start boot): " + ok.header("x-husk-request-ms") + " ms");
  CHECK(children_of(serve.pid()).empty());  // used once and gone

  const Reply late = curl("", url, "sleep\n100");
  CHECK(late.status == 504);
  CHECK(late.header("x-husk-verdict") == "TO");
  CHECK(contains(late.header("x-husk-message"), "--request-timeout (15 s)"));
  CHECK(late.seconds < 40);
  // Its VM was killed and reaped before the answer.
  CHECK(children_of(serve.pid()).empty());
  CHECK(vm_folders(sb.tmp).empty());

  serve.signal(SIGINT);
  CHECK(serve.wait_exit(30s) == 0);
  check_nothing_left(sb);
}
