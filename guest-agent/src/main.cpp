// husk-agent: the guest's PID 1 (or a program /init execs). Usage:
//   husk-agent [--listen vsock:PORT | --listen unix:PATH] [--no-cgroups]
//              [--cgroup-root DIR] [--protect]
// As PID 1 it mounts the kernel file systems, brings up the loopback
// interface, protects itself from the OOM killer, takes its vsock port from
// `husk.agent_port=` on the kernel command line (default 52), and never
// exits: a failure is logged and retried, and Shutdown ends in
// reboot(RB_AUTOBOOT) (the guest runs with reboot=k). Started by the kernel
// itself (`rdinit=/sbin/husk-agent`, what husk asks for when the guest has
// no root disk: no shell runs before the agent), it also prints the
// HUSK_READY marker line that rootfs/initramfs/init prints otherwise.
// Elsewhere (tests on the host) it serves until Shutdown or SIGTERM.
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "guest-agent/src/boot_marks.h"
#include "guest-agent/src/log.h"
#include "guest-agent/src/network.h"
#include "guest-agent/src/pid1.h"
#include "guest-agent/src/server.h"

namespace {

using husk::guest::ServerOptions;

bool parse_port(const std::string& text, uint32_t& port) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v > 0xffffffffUL) return false;
  port = static_cast<uint32_t>(v);
  return true;
}

bool parse_args(int argc, char** argv, ServerOptions& opts, bool& listen_given, bool& protect) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--listen" && has_value) {
      const std::string v = argv[++i];
      listen_given = true;
      if (v.rfind("unix:", 0) == 0 && v.size() > 5) {
        opts.vsock = false;
        opts.unix_path = v.substr(5);
      } else if (v.rfind("vsock:", 0) != 0 || !parse_port(v.substr(6), opts.port)) {
        HUSK_LOG("bad --listen %s (vsock:PORT or unix:PATH)", v.c_str());
        return false;
      }
    } else if (arg == "--no-cgroups") {
      opts.cgroups = false;
    } else if (arg == "--cgroup-root" && has_value) {
      opts.cgroup_root = argv[++i];
    } else if (arg == "--protect") {
      protect = true;
    } else {
      HUSK_LOG("usage: husk-agent [--listen vsock:PORT|unix:PATH] [--no-cgroups] "
               "[--cgroup-root DIR] [--protect]");
      return false;
    }
  }
  return true;
}

// PID 1 must never return from main: the kernel would panic.
[[noreturn]] void idle_forever() {
  for (;;) ::pause();
}

}  // namespace

int main(int argc, char** argv) {
  ServerOptions opts;
  opts.pid1 = ::getpid() == 1;
  bool listen_given = false;
  bool protect = opts.pid1;
  if (!parse_args(argc, argv, opts, listen_given, protect)) {
    if (opts.pid1) idle_forever();
    return 2;
  }
  bool first_init = false;
  if (opts.pid1) {
    first_init = husk::guest::mount_filesystems();
    husk::guest::ensure_std_fds();
    opts.start_marks.push_back({"agent_mounts", husk::guest::boottime_us()});
    // Every guest has lo, network or not (a job without one has only lo).
    if (const husk::guest::StepError e = husk::guest::bring_up_loopback(); e.err != 0) {
      HUSK_LOG("loopback: %s", e.message().c_str());
    }
    opts.start_marks.push_back({"agent_loopback", husk::guest::boottime_us()});
    if (!listen_given) {
      const std::string port = husk::guest::cmdline_value("husk.agent_port");
      if (!port.empty() && !parse_port(port, opts.port)) HUSK_LOG("bad husk.agent_port=%s", port.c_str());
    }
  } else {
    // Outside a VM, orphaned grandchildren of jobs come back to us to reap.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  }
  if (protect) {
    husk::guest::protect_self();
    opts.protected_self = true;
  }
  if (opts.cgroups && husk::guest::enable_cgroup_controllers(opts.cgroup_root) != 0) {
    HUSK_LOG("cgroups unavailable: memory, pids and CPU limits will be refused");
    opts.cgroups = false;
  }
  if (opts.pid1) opts.start_marks.push_back({"agent_cgroups", husk::guest::boottime_us()});
  if (first_init) husk::guest::print_ready_marker();

  for (unsigned attempt = 0;; ++attempt) {
    bool shutdown = false;
    try {
      husk::guest::Server server(opts);
      shutdown = server.run();
    } catch (const std::exception& e) {
      // Last resort (allocation failure): PID 1 must survive it.
      HUSK_LOG("server failed: %s", e.what());
    }
    if (shutdown) break;
    if (!opts.pid1) return 1;
    HUSK_LOG("restarting the server (attempt %u)", attempt + 1);
    ::sleep(1);
  }
  if (opts.pid1) {
    ::sync();
    ::reboot(RB_AUTOBOOT);
    HUSK_LOG("reboot: %s", std::strerror(errno));
    idle_forever();
  }
  return 0;
}
