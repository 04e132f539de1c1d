// The network e2e tests' lab, on the machine that runs the guests (the
// nested test host, or a host whose KVM runs Linux): a dummy interface
// with two addresses, 192.168.50.1 (the lab's allowed server) and
// 192.168.50.2 (a server the jobs may not reach), a default route through
// it when the machine has none (passt needs a host interface to copy), and
// tests/e2e/net/lab_server.py serving HTTP on both addresses (port 8080),
// on 127.0.0.1:8081 (the host as passt's guest sees it at its gateway) and
// 0.0.0.0:8082 (the host as a tap's guest sees it), and DNS on
// 192.168.50.1:53. Set up once per test program, torn down at its exit.
// Needs root (an interface, port 53), as the test host's runs are.
// The test host runs its commands chrooted into this machine's root, and
// the kernel refuses user namespaces to a chrooted process, in which passt
// isolates itself: passt_wrapper() runs passt through husk-net-probe's
// `unchroot` (tests/bench/net/net_probe.c), given to husk as HUSK_PASST.
// On a machine that is not chrooted, the wrapper just runs passt.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/e2e/guest_session.h"

namespace husk::test::net {

inline constexpr const char* kLabInterface = "husklab0";
inline constexpr const char* kAllowedIp = "192.168.50.1";
inline constexpr const char* kDeniedIp = "192.168.50.2";

class Lab {
 public:
  static Lab& get() {
    static Lab lab;
    return lab;
  }
  ~Lab() {
    if (server_ > 0) {
      ::kill(server_, SIGKILL);
      ::waitpid(server_, nullptr, 0);
    }
    if (made_interface_) shell(std::string("ip link del ") + kLabInterface + " 2>/dev/null");
  }
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // HUSK_PASST=... for husk's environment.
  [[nodiscard]] std::string passt_setting() const { return "HUSK_PASST=" + wrapper_; }

 private:
  Lab() {
    if (::geteuid() != 0) throw std::runtime_error("the network lab needs root (an interface and port 53)");
    const std::string i = kLabInterface;
    shell("ip link del " + i + " 2>/dev/null");
    if (shell("ip link add " + i + " type dummy && ip addr add 192.168.50.1/24 dev " + i +
              " && ip addr add 192.168.50.2/24 dev " + i + " && ip link set " + i + " up && ip link set lo up") != 0) {
      throw std::runtime_error("cannot set up the lab interface " + i + " (ip link add ... type dummy)");
    }
    made_interface_ = true;
    if (shell("ip route show default | grep -q .") != 0) {
      if (shell("ip route add default via 192.168.50.254 dev " + i) != 0) {
        throw std::runtime_error("cannot add the lab's default route");
      }
    }
    const std::string script = (std::filesystem::path(__FILE__).parent_path() / "net" / "lab_server.py").string();
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    server_ = ::fork();
    if (server_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::execlp("python3", "python3", script.c_str(), "--http", "192.168.50.1:8080", "--http", "192.168.50.2:8080",
               "--http", "127.0.0.1:8081", "--http", "0.0.0.0:8082", "--dns", "192.168.50.1:53", nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    char buf[16] = {};
    const ssize_t n = ::read(out[0], buf, sizeof(buf) - 1);
    ::close(out[0]);
    if (n <= 0 || std::string(buf).rfind("ready", 0) != 0) throw std::runtime_error("the lab server did not start");
    wrapper_ = dir_.file("passt");
    std::ofstream(wrapper_) << "#!/bin/sh\nexec '" << HUSK_NET_PROBE << "' unchroot passt \"$@\"\n";
    ::chmod(wrapper_.c_str(), 0755);
  }

  TempDir dir_;
  std::string wrapper_;
  pid_t server_ = -1;
  bool made_interface_ = false;
};

}  // namespace husk::test::net
