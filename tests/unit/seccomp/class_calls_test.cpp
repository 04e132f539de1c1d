// Each class's filter lets through what its code does: the calls of the
// runtime code the class runs (and of the libraries under it: glibc 2.36,
// libstdc++, spdlog) made for real under the filter, in a forked child.
// A call missing from a list ends the child with exit 200 and the report
// line names it (printed by the failed CHECK).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "runtime/common/file.h"
#include "runtime/common/private_dir.h"
#include "runtime/job/watchdog.h"
#include "runtime/net/frame_link.h"
#include "seccomp/filter.h"
#include "seccomp/violation.h"
#include "tests/unit/seccomp/seccomp_child.h"

namespace sc = husk::seccomp;
namespace fs = std::filesystem;
using husk::test::in_seccomp_child;

using husk::test::enter_as;

namespace {

int listen_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 8) != 0) return -1;
  return fd;
}

int connect_unix(const std::string& path, int flags) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | flags, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  return fd;
}

// Logs go to stderr, as in the husk program (cli/main.cpp); for the child.
void log_to_stderr() { spdlog::set_default_logger(spdlog::stderr_color_mt("husk-test")); }

// A folder of its own under the test's TMPDIR, removed at the end.
struct Scratch {
  Scratch() {
    std::string pattern = (fs::temp_directory_path() / "husk-seccomp-test-XXXXXX").string();
    path = ::mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~Scratch() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
  std::string path;
};

}  // namespace

TEST_CASE("main's filter lets the CLI's own calls through", "[unit][seccomp]") {
  Scratch scratch;
  REQUIRE(!scratch.path.empty());
  REQUIRE(sc::prepare({sc::ThreadClass::kMain, sc::ThreadClass::kWatchdog}));
  const auto child = in_seccomp_child([&scratch] {
    // Made before: the agent's socket, the VMM process (a child to reap),
    // its channel, the VM's private folder, stdout to a file.
    const std::string sock = scratch.path + "/vsock.sock";
    const int listener = listen_unix(sock);
    if (listener < 0) return 1;
    int channel[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0) return 2;
    const pid_t vmm = ::fork();
    if (vmm == 0) {
      // Nothing of the test runs here; it dies with its parent at the latest.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      for (;;) ::pause();
    }
    auto private_dir = husk::PrivateDir::create("husk-seccomp-test");
    if (!private_dir) return 3;
    const int out = ::open((scratch.path + "/stdout").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0 || ::dup2(out, STDOUT_FILENO) < 0) return 4;
    log_to_stderr();
    if (!enter_as(sc::ThreadClass::kMain, "husk")) return 5;

    // The agent client: connect, frames out and in, deadlines.
    const int agent = connect_unix(sock, SOCK_CLOEXEC);
    if (agent < 0) return 10;
    if (::send(agent, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) return 11;
    pollfd p{agent, POLLOUT, 0};
    if (::poll(&p, 1, 100) != 1) return 12;
    ::shutdown(agent, SHUT_RDWR);
    ::close(agent);
    // The VMM channel.
    if (::send(channel[1], "stop", 4, MSG_NOSIGNAL) != 4) return 13;
    char msg[8];
    if (::recv(channel[0], msg, sizeof(msg), 0) != 4) return 14;
    // Input and output files, std::filesystem, iostreams.
    const fs::path outputs = fs::path(scratch.path) / "out" / "a" / "b";
    std::error_code ec;
    fs::create_directories(outputs, ec);
    if (ec) return 20;
    {
      std::ofstream f(outputs / "result.bin", std::ios::binary | std::ios::trunc);
      const std::string big(300 * 1024, 'r');
      f.write(big.data(), static_cast<std::streamsize>(big.size()));
      if (!f) return 21;
    }
    {
      std::ifstream in(outputs / "result.bin", std::ios::binary | std::ios::ate);
      if (in.tellg() != 300 * 1024) return 22;
      in.seekg(1024);
      std::string line;
      if (!std::getline(in, line)) return 23;
    }
    auto text = husk::read_text_file((outputs / "result.bin").string());
    if (!text || text->size() != 300 * 1024) return 24;
    struct stat st {};
    if (::stat((outputs / "result.bin").c_str(), &st) != 0) return 25;
    size_t listed = 0;
    for (auto it = fs::recursive_directory_iterator(fs::path(scratch.path) / "out", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      (void)fs::relative(it->path(), scratch.path);
      listed += it->is_regular_file() ? 1 : 0;
    }
    if (ec || listed != 1) return 26;
    if (fs::absolute("relative").empty() || fs::canonical(outputs, ec).empty()) return 27;
    fs::remove_all(fs::path(scratch.path) / "out", ec);
    if (ec) return 28;
    // Output: stdio to stdout (a file), spdlog to stderr.
    fmt::print("verdict OK\n");
    std::fflush(stdout);
    (void)::isatty(STDIN_FILENO);
    spdlog::warn("main under its filter");
    // Waits, clocks, the watchdog thread, the VMM process's end.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    timespec ts{};
    if (::clock_gettime(CLOCK_REALTIME, &ts) != 0 || ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 30;
    std::atomic<bool> fired{false};
    auto dog = husk::job::Watchdog::start(husk::job::Watchdog::Clock::now(), [&fired] { fired = true; });
    if (!dog) return 31;
    while (!fired.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!(*dog)->disarm()) return 32;
    if (::kill(vmm, SIGKILL) != 0) return 33;
    int status = 0;
    if (::waitpid(vmm, &status, 0) != vmm) return 34;
    // The VM's private folder goes last.
    private_dir = husk::Unexpected(husk::Error{});
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
  CHECK(child.err.find("[warning] main under its filter") != std::string::npos);
  CHECK(child.err.find("husk: seccomp:") == std::string::npos);
}

TEST_CASE("the vmm's filter lets the control loop and its teardown through", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kVmm}));
  const auto child = in_seccomp_child([] {
    // Made before the filter, as Machine::run does: the channel, the
    // console, the handlers, the stop signals' signalfd, the vCPU thread.
    int channel[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0) return 1;
    int console[2];
    if (::pipe2(console, O_CLOEXEC) != 0) return 2;
    struct sigaction kick {};
    kick.sa_handler = [](int) {};
    ::sigaction(SIGRTMIN + 1, &kick, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGQUIT);
    sigaddset(&stop, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    const int signals = ::signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0) return 10;
    std::atomic<bool> stop_vcpu{false};
    std::thread vcpu([&stop_vcpu] {
      while (!stop_vcpu.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    if (!enter_as(sc::ThreadClass::kVmm, "husk-vmm")) return 3;

    pollfd fds[2] = {{channel[0], POLLIN, 0}, {signals, POLLIN, 0}};
    if (::send(channel[1], "stop", 4, MSG_NOSIGNAL) != 4 || ::poll(fds, 2, 100) != 1) return 13;
    char msg[8];
    if (::recv(channel[0], msg, sizeof(msg), 0) != 4) return 14;
    signalfd_siginfo info{};
    if (::read(signals, &info, sizeof(info)) >= 0 || errno != EAGAIN) return 12;
    if (::write(console[1], "login: ", 7) != 7) return 15;
    // A stop or a dump kicks the vCPU threads, which are then joined.
    if (::pthread_kill(vcpu.native_handle(), SIGRTMIN + 1) != 0) return 16;
    stop_vcpu.store(true);
    vcpu.join();
    // Teardown.
    ::close(signals);
    ::close(console[0]);
    ::close(console[1]);
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.err == "");
  CHECK(child.status == 0);
}

TEST_CASE("the blk filter lets disk I/O and the event loop through", "[unit][seccomp]") {
  Scratch scratch;
  REQUIRE(!scratch.path.empty());
  REQUIRE(sc::prepare({sc::ThreadClass::kBlock}));
  const auto child = in_seccomp_child([&scratch] {
    const int disk = ::open((scratch.path + "/disk.img").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    const int notify = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (disk < 0 || epoll < 0 || notify < 0 || ::ftruncate(disk, 1 << 20) != 0) return 1;
    log_to_stderr();
    if (!enter_as(sc::ThreadClass::kBlock, "husk-blk0")) return 2;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = notify;
    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, notify, &ev) != 0) return 10;
    const uint64_t one = 1;
    if (::write(notify, &one, sizeof(one)) != sizeof(one)) return 11;
    epoll_event got{};
    if (::epoll_wait(epoll, &got, 1, 100) != 1) return 12;
    uint64_t count = 0;
    if (::read(notify, &count, sizeof(count)) != sizeof(count)) return 13;
    std::vector<char> sector(4096, 'd');
    iovec iov{sector.data(), sector.size()};
    if (::pwritev(disk, &iov, 1, 8192) != 4096 || ::preadv(disk, &iov, 1, 0) != 4096) return 14;
    if (::fdatasync(disk) != 0) return 15;
    // The transport's self-kick, made on first need.
    if (::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) < 0) return 16;
    spdlog::warn("virtio device 2 needs reset: a test");
    if (::epoll_ctl(epoll, EPOLL_CTL_DEL, notify, nullptr) != 0) return 17;
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.status == 0);
  CHECK(child.err.find("[warning] virtio device 2 needs reset: a test") != std::string::npos);
  CHECK(child.err.find("husk: seccomp:") == std::string::npos);
}

TEST_CASE("the vsock filter lets the host side's Unix sockets through", "[unit][seccomp]") {
  Scratch scratch;
  REQUIRE(!scratch.path.empty());
  REQUIRE(sc::prepare({sc::ThreadClass::kVsock}));
  const auto child = in_seccomp_child([&scratch] {
    const std::string uds = scratch.path + "/v.sock";
    const int listener = listen_unix(uds);
    const int service = listen_unix(uds + "_5000");  // a host service guests connect to
    const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (listener < 0 || service < 0 || timer < 0) return 1;
    // A host client (another process, in husk's use) has connected.
    const int client = connect_unix(uds, SOCK_CLOEXEC);
    if (client < 0 || ::send(client, "CONNECT 52\nhello", 16, 0) != 16) return 2;
    if (!enter_as(sc::ThreadClass::kVsock, "husk-vsock")) return 3;

    const int conn = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) return 10;
    itimerspec spec{};
    spec.it_value.tv_nsec = 250'000'000;
    if (::timerfd_settime(timer, 0, &spec, nullptr) != 0) return 11;
    char c = 0;
    std::string line;
    while (::read(conn, &c, 1) == 1 && c != '\n') line.push_back(c);
    if (line != "CONNECT 52") return 12;
    char payload[16];
    iovec iov{payload, sizeof(payload)};
    if (::readv(conn, &iov, 1) != 5) return 13;
    if (::send(conn, "OK 1073741824\n", 14, MSG_NOSIGNAL | MSG_DONTWAIT) != 14) return 14;
    // A guest connection to host port 5000.
    const int out = connect_unix(uds + "_5000", SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (out < 0) return 15;
    if (::shutdown(out, SHUT_WR) != 0) return 16;
    itimerspec off{};
    if (::timerfd_settime(timer, 0, &off, nullptr) != 0) return 17;
    ::close(out);
    ::close(conn);
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.err == "");
  CHECK(child.status == 0);
}

TEST_CASE("the net filter lets the backend links and the rate timer through", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kNet}));
  const auto child = in_seccomp_child([] {
    // What husk opened before the VM: passt's socket pair (the peer plays
    // passt) and a timer; the stream link is the device's real one.
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return 1;
    auto link = husk::net::make_stream_link(husk::UniqueFd(pair[1]));
    const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (!link || timer < 0 || epoll < 0) return 2;
    if (!enter_as(sc::ThreadClass::kNet, "husk-net0")) return 3;
    const std::vector<uint8_t> frame(1514, 0x42);
    auto sent = (*link)->send(frame);
    if (!sent || *sent != husk::net::FrameLink::SendStatus::kSent) return 10;
    if (!(*link)->flush()) return 11;
    // The peer's frame back: length, then the frame.
    const uint8_t back[] = {0, 0, 0, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0};
    if (::write(pair[0], back, sizeof(back)) != sizeof(back)) return 12;
    auto got = (*link)->receive();
    if (!got || !*got || (*got)->size() != 14) return 13;
    itimerspec spec{};
    spec.it_value.tv_nsec = 1'000'000;
    if (::timerfd_settime(timer, 0, &spec, nullptr) != 0) return 14;
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, timer, &ev) != 0) return 15;
    epoll_event fired{};
    if (::epoll_wait(epoll, &fired, 1, 1000) != 1) return 16;
    uint64_t expirations = 0;
    if (::read(timer, &expirations, sizeof(expirations)) != sizeof(expirations)) return 17;
    // The link outlives the thread (the VMM's control thread closes it).
    (void)link->release();
    return 0;
  });
  INFO("the child's stderr: " << child.err);
  CHECK(child.err == "");
  CHECK(child.status == 0);
}

TEST_CASE("the vcpu and console filters let their devices' calls through", "[unit][seccomp]") {
  REQUIRE(sc::prepare({sc::ThreadClass::kVcpu, sc::ThreadClass::kConsole}));
  SECTION("vcpu: console output with backpressure, activation, reset") {
    const auto child = in_seccomp_child([] {
      int console[2];
      const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
      if (::pipe2(console, O_CLOEXEC) != 0 || epoll < 0) return 1;
      if (!enter_as(sc::ThreadClass::kVcpu, "husk-vcpu0")) return 2;
      timespec ts{};
      if (::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return 10;
      pollfd p{console[1], POLLOUT, 0};
      if (::poll(&p, 1, 100) != 1 || ::write(console[1], "Linux version", 13) != 13) return 11;
      // DRIVER_OK of vsock: its timer onto the loop; then a reset.
      const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      epoll_event ev{};
      ev.events = EPOLLIN;
      if (timer < 0 || ::epoll_ctl(epoll, EPOLL_CTL_ADD, timer, &ev) != 0) return 12;
      if (::epoll_ctl(epoll, EPOLL_CTL_DEL, timer, nullptr) != 0 || ::close(timer) != 0) return 13;
      return 0;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.err == "");
    CHECK(child.status == 0);
  }
  SECTION("console: the host's input into the serial port") {
    const auto child = in_seccomp_child([] {
      int input[2];
      const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
      const int irq = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (::pipe2(input, O_CLOEXEC) != 0 || epoll < 0 || irq < 0 || ::write(input[1], "ls\n", 3) != 3) return 1;
      if (!enter_as(sc::ThreadClass::kConsole, "husk-console")) return 2;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = input[0];
      if (::epoll_ctl(epoll, EPOLL_CTL_ADD, input[0], &ev) != 0 || ::epoll_wait(epoll, &ev, 1, 100) != 1) return 10;
      char buf[16];
      if (::read(input[0], buf, sizeof(buf)) != 3) return 11;
      const uint64_t one = 1;
      if (::write(irq, &one, sizeof(one)) != sizeof(one)) return 12;
      return 0;
    });
    INFO("the child's stderr: " << child.err);
    CHECK(child.err == "");
    CHECK(child.status == 0);
  }
}
