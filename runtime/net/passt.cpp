// Passt: spawning, readiness, log tail and stop (see passt.h for how this
// passt version behaves and why husk drives it this way).
#include "runtime/net/passt.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/deadline.h"
#include "runtime/common/spawn.h"

namespace husk::net {

namespace {

constexpr int kSocketBuffer = 4 << 20;

constexpr int kPasstSocketFd = 3;  // `-F 3`
constexpr const char* kLogName = "passt.log";
constexpr const char* kPackageHint = "passt is in the Debian package `passt`; or set $HUSK_PASST";
constexpr auto kReadyPoll = std::chrono::milliseconds(10);
constexpr auto kStopGrace = std::chrono::milliseconds(1000);
constexpr size_t kLogTailBytes = 4096;
constexpr size_t kLogTailLines = 8;

// Glibc 2.36's <sys/pidfd.h> lacks extern "C", so C++ cannot link its
// wrappers: the system calls directly, as in runtime/jail.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
void signal_pidfd(int pidfd, int sig) { (void)::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0); }

bool is_executable_file(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> find_binary(const std::string& configured) {
  std::string binary = configured;
  if (binary.empty()) {
    const char* env = std::getenv("HUSK_PASST");
    if (env != nullptr && *env != '\0') binary = env;
  }
  if (!binary.empty()) {
    if (binary.find('/') == std::string::npos) {
      // A bare name is looked up in PATH below, like the default.
    } else if (is_executable_file(binary)) {
      return binary;
    } else {
      return fail(fmt::format("passt binary {}: not an executable file ({})", binary, kPackageHint));
    }
  }
  const std::string name = binary.empty() ? "passt" : binary;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    std::string candidate = std::string(dir) + "/" + name;
    if (is_executable_file(candidate)) return candidate;
  }
  return fail(fmt::format("{} not found in PATH ({})", name, kPackageHint));
}

Result<void> check_ipv4(const std::string& what, const std::string& address) {
  in_addr parsed{};
  if (::inet_pton(AF_INET, address.c_str(), &parsed) != 1) {
    return fail(fmt::format("passt {} {:?}: not an IPv4 address", what, address));
  }
  return {};
}

Result<std::vector<std::string>> build_args(const std::string& binary, const PasstOptions& o) {
  HUSK_TRY(check_ipv4("guest address", o.guest_address));
  HUSK_TRY(check_ipv4("gateway", o.gateway));
  HUSK_TRY(check_ipv4("DNS forward address", o.dns_forward));
  if (o.prefix < 1 || o.prefix > 32) return fail(fmt::format("passt prefix /{}: not 1 to 32", o.prefix));
  if (o.mtu < 68 || o.mtu > 65520) return fail(fmt::format("passt MTU {}: not 68 to 65520", o.mtu));
  std::string tcp;
  std::string udp;
  for (const PasstForward& f : o.forwards) {
    if (f.host_port == 0 || f.guest_port == 0) return fail("passt port forward: port 0");
    std::string& list = f.udp ? udp : tcp;
    if (!list.empty()) list += ',';
    list += fmt::format("{}:{}", f.host_port, f.guest_port);
  }
  std::vector<std::string> args = {binary,
                                   "--foreground",
                                   "--quiet",
                                   "--fd", std::to_string(kPasstSocketFd),
                                   "--ipv4-only",
                                   "--address", o.guest_address,
                                   "--netmask", std::to_string(o.prefix),
                                   "--gateway", o.gateway,
                                   "--dns-forward", o.dns_forward,
                                   "--mtu", std::to_string(o.mtu),
                                   // Both always: unless -u is given, passt also
                                   // forwards UDP for every forwarded TCP port.
                                   "--tcp-ports", tcp.empty() ? "none" : tcp,
                                   "--udp-ports", udp.empty() ? "none" : udp};
  if (!o.template_interface.empty()) {
    args.insert(args.end(), {"--interface", o.template_interface});
  }
  for (const std::string& dns : o.dns_servers) {
    HUSK_TRY(check_ipv4("DNS server", dns));
    args.insert(args.end(), {"--dns", dns});
  }
  if (!o.pcap_path.empty()) args.insert(args.end(), {"--pcap", o.pcap_path});
  return args;
}

// The last lines of passt's log, on one line, without this version's
// "Failed to send N bytes to syslog" (there is no /dev/log in a jail or a
// container) and without control characters.
std::string log_tail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log)";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > static_cast<std::streamoff>(kLogTailBytes) ? size - kLogTailBytes : 0;
  in.seekg(from);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.rfind("Failed to send", 0) == 0 && line.find("syslog") != std::string::npos) continue;
    std::string clean;
    for (const char c : line) clean += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    const size_t first = clean.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    lines.push_back(clean.substr(first));
  }
  if (lines.empty()) return "(empty log)";
  std::string tail;
  for (size_t i = lines.size() > kLogTailLines ? lines.size() - kLogTailLines : 0; i < lines.size(); ++i) {
    if (!tail.empty()) tail += " | ";
    tail += lines[i];
  }
  return tail;
}

// passt calls seccomp(2) as the last step before its event loop.
bool in_event_loop(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Seccomp:", 0) == 0) return line.find('2') != std::string::npos;
  }
  return false;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "ended";
}

// Waits for the process to end, up to `grace`; true if it did.
bool wait_exit(int pidfd, std::chrono::milliseconds grace) {
  return poll_until(pidfd, POLLIN, Deadline::after(grace)) > 0;
}

// Reaps pid; the exit status, or -1 if something else reaped it.
int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;  // ECHILD: SIGCHLD ignored or reaped elsewhere
  }
  return status;
}

// posix_spawn with fd 0 = /dev/null, 1 and 2 = log, 3 = passt's socket and
// nothing else open; default signal dispositions, an empty signal mask (the
// caller's threads may block signals for a signalfd), its own process group.
Result<pid_t> spawn(const std::vector<std::string>& args, int log_fd, int socket_fd) {
  SpawnOptions options;
  options.output_fd = log_fd;
  options.extra_fds = {FdMapping{.source = socket_fd, .target = kPasstSocketFd}};
  options.new_process_group = true;
  Result<pid_t> pid = spawn_process(args, options);
  if (!pid) {
    Error error = std::move(pid.error());
    error.message += fmt::format(" ({})", kPackageHint);
    return Unexpected(std::move(error));
  }
  return *pid;
}

}  // namespace

Result<Passt> Passt::start(const PasstOptions& options) {
  HUSK_TRY_ASSIGN(const std::string binary, find_binary(options.binary));
  HUSK_TRY_ASSIGN(const std::vector<std::string> args, build_args(binary, options));
  HUSK_TRY_ASSIGN(PrivateDir dir, PrivateDir::create("husk-passt"));

  Passt passt;
  passt.dir_ = std::make_unique<PrivateDir>(std::move(dir));
  const std::string log_path = passt.log_path();
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return fail_errno("create " + log_path);

  int pair[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return fail_errno("socketpair for passt");
  passt.socket_ = UniqueFd(pair[0]);
  UniqueFd theirs(pair[1]);
  // Room for a burst of 64 KiB frames both ways. A Unix stream socket
  // holds about 200 KiB by default: three such frames. passt drops what
  // does not fit (TCP then retransmits, and a guest that reads in bursts
  // saw mostly duplicates). Root may go past wmem_max (the FORCE options);
  // otherwise the kernel caps the size, which still works.
  for (int fd : {pair[0], pair[1]}) {
    for (int opt : {SO_SNDBUFFORCE, SO_RCVBUFFORCE}) {
      if (::setsockopt(fd, SOL_SOCKET, opt, &kSocketBuffer, sizeof(kSocketBuffer)) != 0) {
        const int plain = opt == SO_SNDBUFFORCE ? SO_SNDBUF : SO_RCVBUF;
        (void)::setsockopt(fd, SOL_SOCKET, plain, &kSocketBuffer, sizeof(kSocketBuffer));
      }
    }
  }

  HUSK_TRY_ASSIGN(passt.pid_, spawn(args, log.get(), theirs.get()));
  // passt has its copies; husk keeps neither (holding passt's end would
  // keep the VM's socket from ever seeing passt go away).
  theirs.reset();
  log.reset();
  passt.pidfd_ = UniqueFd(open_pidfd(passt.pid_));
  if (!passt.pidfd_) {
    const int err = errno;
    passt.stop();
    return fail_errno("pidfd_open for passt", err);
  }

  const Deadline deadline = Deadline::after(options.start_timeout);
  for (;;) {
    if (wait_exit(passt.pidfd_.get(), std::min(kReadyPoll, deadline.left()))) {
      const int status = reap(passt.pid_);
      passt.pid_ = -1;
      const std::string why = status < 0 ? "ended" : describe_status(status);
      return fail(fmt::format("passt {} before it was ready: {}", why, log_tail(log_path)));
    }
    if (in_event_loop(passt.pid_)) return passt;
    if (deadline.expired()) {
      const std::string tail = log_tail(log_path);
      passt.stop();
      return fail(fmt::format("passt was not ready within {} ms: {}", options.start_timeout.count(), tail));
    }
  }
}

UniqueFd Passt::take_socket() { return std::move(socket_); }

std::string Passt::log_path() const { return dir_ ? dir_->file(kLogName) : std::string(); }

void Passt::stop() {
  // Closing husk's end first: in one-off mode passt then leaves by itself.
  socket_.reset();
  if (pid_ > 0) {
    if (pidfd_) {
      signal_pidfd(pidfd_.get(), SIGTERM);
      if (!wait_exit(pidfd_.get(), kStopGrace)) {
        signal_pidfd(pidfd_.get(), SIGKILL);
      }
    } else {
      ::kill(pid_, SIGKILL);  // only before pidfd_open succeeded: still our unreaped child
    }
    (void)reap(pid_);
    pid_ = -1;
  }
  pidfd_.reset();
  dir_.reset();
}

Passt::~Passt() { stop(); }

Passt::Passt(Passt&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      socket_(std::move(other.socket_)),
      dir_(std::move(other.dir_)) {}

Passt& Passt::operator=(Passt&& other) noexcept {
  if (this != &other) {
    stop();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    socket_ = std::move(other.socket_);
    dir_ = std::move(other.dir_);
  }
  return *this;
}

}  // namespace husk::net
