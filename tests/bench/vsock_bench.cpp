// husk-vsock-bench: the measuring half of `make bench-vsock` (tests/bench/vsock
// runs it; vsock_bench.py writes the report). Boots ONE VM with the real guest
// and its agent, under husk (VmSession, the userspace virtio-vsock device
// behind a Unix socket) or under QEMU microvm with vhost-vsock (the kernel's
// device; the host speaks AF_VSOCK), and measures on that one VM:
//   exec_true       round trip of an agent Exec of `true` (N runs after warm-up)
//   agent_stdin     MiB/s of a job's stdin (host -> `cat >/dev/null`)
//   agent_stdout    MiB/s of a job's stdout: vsock_bench_guest writing zeros
//                   in 256 KiB pieces (the raw run's writer) -> host, with
//                   AgentClient's default credit window and with 256 KiB;
//                   and busybox `head -c N /dev/zero` (4 KiB writes, and a
//                   costly writer in itself: see head_alone_mib_s)
//   raw_h2g/raw_g2h MiB/s of one plain vsock stream to/from a guest program
//                   (vsock_bench_guest), no agent in the data path
// and writes one JSON object. A benchmark: it prints numbers, judges none.
//
// Usage: husk-vsock-bench --vmm husk|qemu --kernel K --initrd I --guest-tool T
//          --out FILE [--memory MIB] [--runs N] [--mib M] [--qemu BIN] [--cid C]
//          [--log-dir DIR]
// Exit code: 0 when every measurement was made, 1 when some failed (the JSON
// says which), 2 on bad usage.
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/agent/vm_session.h"

namespace {

using husk::Result;
using husk::UniqueFd;
using husk::agent::AgentClient;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr uint32_t kAgentPort = 52;
constexpr uint32_t kSinkPort = 5201;
constexpr uint32_t kSendPort = 5202;

struct Options {
  std::string vmm, kernel, initrd, tool, out, qemu = "qemu-system-x86_64", log_dir = "build/bench/logs";
  uint64_t memory = 256, runs = 50, mib = 256, cid = 3;
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// How to reach the guest beyond the agent: husk through its Unix socket
// (Firecracker's CONNECT scheme), QEMU through AF_VSOCK.
struct Guest {
  std::function<int(uint32_t port)> connect;  // -1 when refused
  std::function<int(uint32_t port)> listen;   // for guest-initiated streams
};

int unix_connect(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int husk_connect(const std::string& uds, uint32_t port) {
  const int fd = unix_connect(uds);
  if (fd < 0) return -1;
  const std::string line = fmt::format("CONNECT {}\n", port);
  std::string reply;
  char c = 0;
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
    while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
  }
  if (reply.rfind("OK ", 0) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int husk_listen(const std::string& uds, uint32_t port) {
  const std::string path = fmt::format("{}_{}", uds, port);
  ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 1) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int vsock_connect(uint32_t cid, uint32_t port) {
  const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = cid;
  a.svm_port = port;
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

int vsock_listen(uint32_t port) {
  const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = VMADDR_CID_ANY;
  a.svm_port = port;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 1) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// Retries `connect` until it gives an fd or `seconds` pass.
int connect_retry(const std::function<int()>& connect, double seconds) {
  const auto start = Clock::now();
  while (ms_since(start) < seconds * 1000) {
    if (const int fd = connect(); fd >= 0) return fd;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

json stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double q) {
    const double pos = (static_cast<double>(v.size()) - 1) * q;
    const size_t lo = static_cast<size_t>(pos);
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
  };
  if (v.empty()) return {{"runs", 0}};
  auto r3 = [](double x) { return std::round(x * 1000) / 1000; };
  return {{"runs", v.size()}, {"median_ms", r3(pct(0.5))}, {"p99_ms", r3(pct(0.99))},
          {"min_ms", r3(v.front())}, {"max_ms", r3(v.back())}};
}

struct Job {
  bool ok = false;
  std::string out, err, error;
  int exit_code = -1;
};

husk::agent::ExecRequest request(std::vector<std::string> argv) {
  husk::agent::ExecRequest req;
  req.argv = std::move(argv);
  return req;
}

Job run_job(AgentClient& agent, husk::agent::ExecRequest req) {
  req.env = {"PATH=/tmp:/usr/sbin:/usr/bin:/sbin:/bin"};
  Job job;
  husk::agent::ExecCallbacks cb;
  cb.on_stdout = [&](std::string_view d) { job.out.append(d); };
  cb.on_stderr = [&](std::string_view d) { job.err.append(d); };
  auto r = agent.exec(req, cb);
  if (!r) {
    job.error = r.error().message;
  } else if (!r->started) {
    job.error = fmt::format("could not start {}: errno {}", req.argv.front(), r->failure.err);
  } else {
    job.ok = true;
    job.exit_code = r->exit.signal != 0 ? 128 + r->exit.signal : r->exit.exit_code;
  }
  return job;
}

double mib_per_s(uint64_t bytes, double ms) { return std::round(bytes / 1048576.0 / (ms / 1000) * 10) / 10; }

// Every measurement on one booted VM; failures go into result["errors"].
void measure(AgentClient& agent, const Guest& guest, const Options& o, json& result) {
  json errors = json::array();
  const uint64_t bytes = o.mib << 20;
  Job j;
  std::ifstream tool_in(o.tool, std::ios::binary);
  const std::string tool((std::istreambuf_iterator<char>(tool_in)), std::istreambuf_iterator<char>());
  if (auto w = agent.write_file("/tmp/vsock_bench_guest", tool, 0755); !w || tool.empty()) {
    errors.push_back("upload of the guest tool failed");
  }

  std::vector<double> rtt;
  for (uint64_t i = 0; i < o.runs + 3; ++i) {
    const auto t = Clock::now();
    // busybox's `true` applet: one exec, no shell.
    j = run_job(agent, request({"/bin/busybox", "true"}));
    const double ms = ms_since(t);
    if (!j.ok || j.exit_code != 0) {
      errors.push_back("exec true: " + j.error);
      break;
    }
    if (i >= 3) rtt.push_back(ms);  // three warm-up runs
  }
  result["exec_true"] = stats(rtt);
  fmt::print(stderr, "vsock-bench {}: exec true median {} ms\n", o.vmm, result["exec_true"].value("median_ms", 0.0));

  // Through the agent: stdin in, stdout out.
  husk::agent::ExecRequest in = request({"sh", "-c", "cat > /dev/null"});
  in.stdin_mode = husk::agent::proto::StdinMode::kStream;
  in.stdin_data.assign(bytes, 'x');
  auto t = Clock::now();
  j = run_job(agent, in);
  const double in_ms = ms_since(t);
  in.stdin_data.clear();
  in.stdin_data.shrink_to_fit();
  if (j.ok && j.exit_code == 0) {
    result["agent_stdin_mib_s"] = mib_per_s(bytes, in_ms);
  } else {
    errors.push_back("agent stdin: " + j.error + j.err);
  }
  // Output: the raw run's writer on the job's stdout, with AgentClient's
  // default credit window (what `husk exec` uses) and with 256 KiB (the old
  // default), then busybox head's small writes; every byte is counted.
  const std::string size = std::to_string(bytes);
  const std::vector<std::tuple<const char*, uint32_t, std::vector<std::string>>> outputs{
      {"agent_stdout_mib_s", 0, {"/tmp/vsock_bench_guest", "stdout", size}},
      {"agent_stdout_256k_window_mib_s", 256 * 1024, {"/tmp/vsock_bench_guest", "stdout", size}},
      {"agent_stdout_head_mib_s", 0, {"head", "-c", size, "/dev/zero"}}};
  for (const auto& [key, window, argv] : outputs) {
    agent.set_output_window(window != 0 ? window : AgentClient::kDefaultOutputWindow);
    uint64_t got = 0;
    husk::agent::ExecCallbacks count;
    count.on_stdout = [&](std::string_view d) { got += d.size(); };
    t = Clock::now();
    husk::agent::ExecRequest out = request(argv);
    out.env = {"PATH=/usr/bin:/bin"};
    auto r = agent.exec(out, count);
    const double out_ms = ms_since(t);
    if (r && r->started && r->exit.exit_code == 0 && got == bytes) {
      result[key] = mib_per_s(bytes, out_ms);
    } else {
      errors.push_back(fmt::format("{}: got {} of {} bytes{}", key, got, bytes, r ? "" : ": " + r.error().message));
    }
  }
  agent.set_output_window(AgentClient::kDefaultOutputWindow);
  // What busybox head costs by itself, writing to /dev/null in the guest.
  t = Clock::now();
  j = run_job(agent, request({"sh", "-c", "head -c " + size + " /dev/zero > /dev/null"}));
  if (j.ok && j.exit_code == 0) result["head_alone_mib_s"] = mib_per_s(bytes, ms_since(t));
  fmt::print(stderr, "vsock-bench {}: agent stdin {} MiB/s, stdout {} MiB/s ({} with a 256 KiB window, {} from head; head alone {})\n",
             o.vmm, result.value("agent_stdin_mib_s", 0.0), result.value("agent_stdout_mib_s", 0.0),
             result.value("agent_stdout_256k_window_mib_s", 0.0), result.value("agent_stdout_head_mib_s", 0.0),
             result.value("head_alone_mib_s", 0.0));

  // Raw vsock, host -> guest: the guest program listens, we connect and send.
  {
    Job sink;
    std::thread job([&] { sink = run_job(agent, request({"/tmp/vsock_bench_guest", "sink", std::to_string(kSinkPort)})); });
    const int fd = connect_retry([&] { return guest.connect(kSinkPort); }, 60);
    double ms = -1;
    if (fd >= 0) {
      static std::vector<char> chunk(256 * 1024, 'y');
      const auto start = Clock::now();
      bool ok = true;
      for (uint64_t sent = 0; sent < bytes && ok;) {
        const ssize_t w = ::send(fd, chunk.data(), std::min<uint64_t>(chunk.size(), bytes - sent), MSG_NOSIGNAL);
        ok = w > 0;
        sent += ok ? static_cast<uint64_t>(w) : 0;
      }
      ::shutdown(fd, SHUT_WR);
      char c;
      while (::read(fd, &c, 1) > 0) {
      }
      // The guest closes after reading everything: the stream is done.
      ms = ok ? ms_since(start) : -1;
      ::close(fd);
    }
    job.join();
    if (ms > 0 && sink.ok && sink.out == std::to_string(bytes) + "\n") {
      result["raw_host_to_guest_mib_s"] = mib_per_s(bytes, ms);
    } else {
      errors.push_back("raw host->guest: " + sink.error + sink.err + sink.out);
    }
  }
  // Raw vsock, guest -> host: we listen, the guest program connects.
  {
    const int listener = guest.listen(kSendPort);
    Job send;
    std::thread job([&] {
      send = run_job(agent, request({"/tmp/vsock_bench_guest", "send", std::to_string(kSendPort), std::to_string(bytes)}));
    });
    double ms = -1;
    uint64_t total = 0;
    pollfd p{listener, POLLIN, 0};
    if (listener >= 0 && ::poll(&p, 1, 60'000) == 1) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      const auto start = Clock::now();
      static std::vector<char> buf(256 * 1024);
      ssize_t n;
      while (fd >= 0 && (n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
      ms = ms_since(start);
      ::close(fd);
    }
    job.join();
    if (listener >= 0) ::close(listener);
    if (ms > 0 && total == bytes && send.ok && send.exit_code == 0) {
      result["raw_guest_to_host_mib_s"] = mib_per_s(bytes, ms);
    } else {
      errors.push_back(fmt::format("raw guest->host: got {} of {} bytes; {}{}{}", total, bytes, send.error,
                                   send.err, send.out));
    }
  }
  fmt::print(stderr, "vsock-bench {}: raw host->guest {} MiB/s, guest->host {} MiB/s\n", o.vmm,
             result.value("raw_host_to_guest_mib_s", 0.0), result.value("raw_guest_to_host_mib_s", 0.0));
  // Issue 10's measure: the job's stdout against the raw stream, same VM.
  if (result.contains("agent_stdout_mib_s") && result.value("raw_guest_to_host_mib_s", 0.0) > 0) {
    result["agent_stdout_over_raw"] = std::round(result["agent_stdout_mib_s"].get<double>() /
                                                 result["raw_guest_to_host_mib_s"].get<double>() * 1000) / 1000;
  }
  result["errors"] = errors;
}

int bench_husk(const Options& o, json& result) {
  husk::vmm::VmConfig config;
  config.kernel_path = o.kernel;
  config.initrd_path = o.initrd;
  config.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  config.memory_mib = o.memory;
  husk::agent::SessionOptions so;
  so.console_path = o.log_dir + "/vsock-husk-console.log";
  auto session = husk::agent::VmSession::start(config, so);
  if (!session) {
    result["errors"] = json::array({"boot: " + session.error().message});
    return 1;
  }
  result["boot_to_agent_ms"] = (*session)->boot_time().count();
  const std::string uds = (*session)->vsock_path();
  Guest guest{[uds](uint32_t port) { return husk_connect(uds, port); },
              [uds](uint32_t port) { return husk_listen(uds, port); }};
  measure((*session)->agent(), guest, o, result);
  auto vm = (*session)->finish();
  result["vm_exit"] = vm ? husk::vmm::exit_reason_name(vm->reason) : vm.error().message;
  return 0;
}

int bench_qemu(const Options& o, json& result) {
  const std::vector<std::string> argv{
      o.qemu, "-M", "microvm,x-option-roms=off,rtc=off,acpi=off,pcie=off", "-enable-kvm", "-cpu", "host",
      "-m", std::to_string(o.memory), "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
      "-serial", "file:" + o.log_dir + "/vsock-qemu-console.log", "-no-reboot", "-kernel", o.kernel,
      "-initrd", o.initrd,
      // microvm has no i8042: reboot=t ends in a triple fault, and -no-reboot exits.
      "-append", "console=ttyS0 reboot=t panic=-1 quiet husk.agent=1",
      "-device", fmt::format("vhost-vsock-device,guest-cid={}", o.cid)};
  result["argv"] = argv;
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  // Boot: connect to the agent until it answers Hello.
  std::optional<AgentClient> agent;
  while (!agent && ms_since(start) < 120'000) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      result["errors"] = json::array({fmt::format("QEMU exited during boot (status {})", status)});
      return 1;
    }
    const int fd = vsock_connect(static_cast<uint32_t>(o.cid), kAgentPort);
    if (fd >= 0) {
      AgentClient client{UniqueFd(fd)};
      if (client.hello()) {
        agent.emplace(std::move(client));
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int rc = 0;
  if (!agent) {
    result["errors"] = json::array({"the agent under QEMU never answered"});
    rc = 1;
  } else {
    result["boot_to_agent_ms"] = static_cast<int64_t>(ms_since(start));
    Guest guest{[&o](uint32_t port) { return vsock_connect(static_cast<uint32_t>(o.cid), port); },
                [](uint32_t port) { return vsock_listen(port); }};
    measure(*agent, guest, o, result);
    (void)agent->shutdown();
  }
  const auto stop = Clock::now();
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (ms_since(stop) > 20'000) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      result["vm_exit"] = "killed";
      return rc;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result["vm_exit"] = fmt::format("qemu exit status {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--vmm") o.vmm = v;
    else if (k == "--kernel") o.kernel = v;
    else if (k == "--initrd") o.initrd = v;
    else if (k == "--guest-tool") o.tool = v;
    else if (k == "--out") o.out = v;
    else if (k == "--qemu") o.qemu = v;
    else if (k == "--log-dir") o.log_dir = v;
    else if (k == "--memory") o.memory = std::stoull(v);
    else if (k == "--runs") o.runs = std::stoull(v);
    else if (k == "--mib") o.mib = std::stoull(v);
    else if (k == "--cid") o.cid = std::stoull(v);
    else {
      fmt::print(stderr, "husk-vsock-bench: unknown option {}\n", k);
      return 2;
    }
  }
  if ((o.vmm != "husk" && o.vmm != "qemu") || o.kernel.empty() || o.initrd.empty() || o.out.empty() ||
      o.tool.empty() || o.runs == 0 || o.mib == 0) {
    fmt::print(stderr, "usage: husk-vsock-bench --vmm husk|qemu --kernel K --initrd I --guest-tool T --out FILE "
                       "[--memory MIB] [--runs N] [--mib M] [--qemu BIN] [--cid C] [--log-dir DIR]\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  json result{{"vmm", o.vmm}, {"memory_mib", o.memory}, {"runs", o.runs}, {"transfer_mib", o.mib}};
  int rc = o.vmm == "husk" ? bench_husk(o, result) : bench_qemu(o, result);
  if (!result.value("errors", json::array()).empty()) rc = 1;
  std::ofstream(o.out) << result.dump(2) << "\n";
  return rc;
}
