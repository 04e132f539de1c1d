// Passt: one passt process (user-mode networking, https://passt.top, Debian
// package `passt`) for one VM, started with the VM and stopped with it.
//
// How this works with passt 0.0~git20230309 (Debian 12), and why:
// - The VM's end is a socketpair, not passt's listening socket: husk keeps
//   one end and passes the other as `-F 3`. Run as root, passt switches to
//   user nobody *before* it binds its `-s` socket, so a socket in husk's
//   private (0700, root) folder fails with EACCES, which this version logs
//   as "bound" and then exits 0 on the first epoll_wait. `-F` needs no
//   socket file, no wait for one, and no one else can connect. `-F` implies
//   one-off mode (passt exits when the socket's other end closes: the VMM
//   process holding it dies with or without husk); `-1` with `-F` is an
//   error in this version ("Redundant --one-off option").
// - Ready means in its event loop: passt installs its seccomp filter as the
//   last step before the loop, so start() waits for "Seccomp: 2" in
//   /proc/PID/status (passt's -P pid file cannot be used: it is opened as
//   nobody too).
// - passt needs an IPv4 template interface other than lo: the one of the
//   first IPv4 default route, or the one named by `-i` (template_interface),
//   which may have no address, no route and even be down. Without either it
//   exits 1: "No external routable interface for IPv4 / External interface
//   not usable". Its MAC address becomes passt's.
// - `-q`: only errors are logged (a guest can make the info messages, one
//   per DHCP exchange, grow the log without bound); stdout and stderr go to
//   `passt.log` in a private folder, which start()'s errors quote.
// - `-4`: the guest gets the IPv4 configuration below and nothing of the
//   host's IPv6.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/common/private_dir.h"
#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::net {

struct PasstForward {
  uint16_t host_port = 0;
  uint16_t guest_port = 0;
  bool udp = false;
};

struct PasstOptions {
  // Empty: $HUSK_PASST if set, else "passt" from PATH.
  std::string binary;
  std::string guest_address = "10.0.2.15";  // given to the guest by DHCP
  uint8_t prefix = 24;
  // Traffic to it reaches the host's loopback (passt's gateway mapping).
  std::string gateway = "10.0.2.2";
  // DNS queries (UDP port 53) to it go to the host's first resolv.conf resolver.
  std::string dns_forward = "10.0.2.3";
  // Where those queries go (passt's -D, in order): empty = the host's
  // resolv.conf resolvers.
  std::vector<std::string> dns_servers;
  uint32_t mtu = 1500;  // offered by DHCP; 68 to 65520
  // Published ports; none = no inbound port at all (-t none -u none).
  std::vector<PasstForward> forwards;
  // passt's -i: empty = the interface of the first IPv4 default route.
  std::string template_interface;
  // Optional packet capture (debugging). Run as root, passt opens it as
  // nobody: the folder must let nobody create files (e.g. /tmp), otherwise
  // passt logs "open: Permission denied" and captures nothing.
  std::string pcap_path;
  std::chrono::milliseconds start_timeout{5000};
};

class Passt {
 public:
  // Starts passt in the foreground (husk holds its pid) with its end of a
  // socketpair, waits until it is in its event loop (start_timeout), and
  // returns. Spawned with posix_spawn (the caller may be multi-threaded),
  // in its own process group, with default signal handling. A failure
  // returns an error with the tail of passt's log.
  [[nodiscard]] static Result<Passt> start(const PasstOptions& options);

  // The connected socket for the VM (once; later calls return an empty fd).
  [[nodiscard]] UniqueFd take_socket();
  [[nodiscard]] pid_t pid() const { return pid_; }
  // passt's stdout and stderr, while the folder exists.
  [[nodiscard]] std::string log_path() const;

  // Stops passt: closes the socket if not taken, SIGTERM, up to 1 s, then
  // SIGKILL; reaps it; removes its folder. Idempotent; the destructor calls it.
  void stop();

  ~Passt();
  Passt(Passt&& other) noexcept;
  Passt& operator=(Passt&& other) noexcept;
  Passt(const Passt&) = delete;
  Passt& operator=(const Passt&) = delete;

 private:
  Passt() = default;

  pid_t pid_ = -1;
  UniqueFd pidfd_;   // names the process even if something else reaps it
  UniqueFd socket_;  // husk's end, until taken
  std::unique_ptr<PrivateDir> dir_;
};

}  // namespace husk::net
