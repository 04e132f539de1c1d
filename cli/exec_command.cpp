#include "cli/exec_command.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <cstring>
#include <iterator>
#include <memory>

#include <fmt/format.h>

#include "cli/exit_codes.h"
#include "cli/guest_paths.h"
#include "runtime/agent/vm_session.h"
#include "runtime/arch/x86_64/layout.h"

namespace husk::cli {

namespace {

// husk exec's own failures; everything else is the command's status.
constexpr int kExecHuskFailed = 125;
constexpr int kExecCannotRun = 126;
constexpr int kExecNotFound = 127;

struct ExecOptions {
  vmm::VmConfig vm;
  std::vector<std::string> disks;
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::string cwd = "/";
  double timeout_s = 0;       // wall limit for the command, 0 none
  uint64_t memory_limit_mib = 0;
  uint32_t pids_limit = 0;
  double boot_timeout_s = 120;
  bool verbose = false;
};

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

int run_exec(ExecOptions& o) {
  for (const std::string& spec : o.disks) {
    auto disk = vmm::parse_disk_spec(spec);
    if (!disk) {
      fmt::print(stderr, "husk: {}\n", disk.error().message);
      return kExitUsage;
    }
    o.vm.disks.push_back(*disk);
  }
  agent::ExecRequest req;
  req.argv = o.command;
  req.env = o.env;
  req.env.insert(req.env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  req.cwd = o.cwd;
  req.limits.wall_ms = static_cast<uint64_t>(o.timeout_s * 1000);
  req.limits.memory_bytes = o.memory_limit_mib << 20;
  req.limits.pids = o.pids_limit;
  if (::isatty(STDIN_FILENO) == 0) {
    // Piped stdin goes to the command whole (streamed under credit).
    req.stdin_data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    req.stdin_mode = agent::proto::StdinMode::kStream;
  }

  // SIGINT/SIGTERM are blocked in every thread and read by the VM's
  // signalfd: Ctrl-C stops the VM cleanly instead of killing husk.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  agent::SessionOptions session_options;
  session_options.boot_timeout = std::chrono::milliseconds(static_cast<int64_t>(o.boot_timeout_s * 1000));
  auto session = agent::VmSession::start(o.vm, session_options);
  if (!session) {
    fmt::print(stderr, "husk: {}\n", session.error().message);
    return kExecHuskFailed;
  }
  if (o.verbose) fmt::print(stderr, "husk: agent ready after {} ms\n", (*session)->boot_time().count());
  agent::AgentClient& agent = (*session)->agent();
  (void)agent.set_clock(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count()));
  agent::ExecCallbacks callbacks;
  callbacks.on_stdout = [](std::string_view d) { write_all(STDOUT_FILENO, d); };
  callbacks.on_stderr = [](std::string_view d) { write_all(STDERR_FILENO, d); };
  auto result = agent.exec(req, callbacks);
  if (!result) {
    // The connection broke: the agent died or the VM stopped under it.
    (*session)->kill("agent connection lost");
    auto vm = (*session)->finish(std::chrono::seconds(1));
    fmt::print(stderr, "husk: lost the guest agent: {}{}\n", result.error().message,
               vm ? fmt::format(" (VM: {}: {})", vmm::exit_reason_name(vm->reason), vm->detail) : "");
    fmt::print(stderr, "husk: last console lines:\n{}", (*session)->console_tail(8));
    if (vm && !vm->diagnostics.empty()) fmt::print(stderr, "{}", vm->diagnostics);
    return kExecHuskFailed;
  }
  auto vm = (*session)->finish();
  if (o.verbose && vm) fmt::print(stderr, "husk: VM stopped: {}\n", vm->detail);
  if (!result->started) {
    fmt::print(stderr, "husk: cannot run {}: {} failed: {}\n", o.command.front(),
               agent::proto::stage_name(result->failure.stage), std::strerror(static_cast<int>(result->failure.err)));
    return result->failure.err == ENOENT ? kExecNotFound : kExecCannotRun;
  }
  const agent::proto::Exited& exited = result->exit;
  if (exited.reason != agent::proto::ExitReason::kNormal) {
    fmt::print(stderr, "husk: {} ({})\n", agent::proto::reason_name(exited.reason),
               exited.signal != 0 ? fmt::format("signal {}", exited.signal) : fmt::format("exit {}", exited.exit_code));
  } else if (exited.signal != 0) {
    const char* abbrev = ::sigabbrev_np(static_cast<int>(exited.signal));
    fmt::print(stderr, "husk: killed by signal {} (SIG{})\n", exited.signal, abbrev != nullptr ? abbrev : "?");
  }
  if (exited.signal != 0) return 128 + static_cast<int>(exited.signal);
  return static_cast<int>(exited.exit_code);
}

}  // namespace

void add_exec_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ExecOptions>();
  o->vm.kernel_path = default_kernel_path();
  o->vm.initrd_path = default_initrd_path();
  o->vm.cmdline = "console=ttyS0 reboot=k panic=-1 quiet";
  o->vm.memory_mib = 256;
  CLI::App* cmd = app.add_subcommand("exec", "Boot a VM, run one command in it, and exit with its status");
  cmd->add_option("--kernel", o->vm.kernel_path, "guest kernel")->capture_default_str();
  cmd->add_option("--initrd", o->vm.initrd_path, "initramfs with the husk agent")->capture_default_str();
  cmd->add_option("--cmdline", o->vm.cmdline, "kernel command line")->capture_default_str();
  cmd->add_option("--vcpus", o->vm.vcpus, fmt::format("vCPUs (1-{})", x86_64::kMaxVcpus))->capture_default_str();
  cmd->add_option("--memory", o->vm.memory_mib, "guest memory in MiB")->capture_default_str();
  cmd->add_option("--disk", o->disks, "virtio-blk disk PATH[,ro|,cow|,rw]; repeatable");
  cmd->add_flag("--rng", o->vm.rng, "attach a virtio-rng device");
  cmd->add_option("--env", o->env, "KEY=VALUE for the command; repeatable");
  cmd->add_option("--cwd", o->cwd, "working directory in the guest")->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s, "wall-time limit in seconds (kills the whole process tree)");
  cmd->add_option("--memory-limit", o->memory_limit_mib, "memory limit for the command in MiB (cgroup)");
  cmd->add_option("--pids-limit", o->pids_limit, "process-count limit for the command (cgroup)");
  cmd->add_option("--boot-timeout", o->boot_timeout_s, "seconds to wait for the guest agent")->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "report boot and shutdown on stderr");
  cmd->add_option("command", o->command, "the command and its arguments (after --)")->required();
  cmd->callback([o, &exit_code] { exit_code = run_exec(*o); });
}

}  // namespace husk::cli
