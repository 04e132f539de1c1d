#include "runtime/vmm/vmm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <fmt/format.h>

#include "runtime/common/deadline.h"
#include "runtime/common/signals.h"
#include "runtime/kvm/cpuid_cache.h"
#include "runtime/net/net_report_codec.h"
#include "runtime/vmm/vm_builder.h"
#include "runtime/vmm/vmm_channel.h"
#include "seccomp/filter.h"
#include "seccomp/violation.h"

namespace husk::vmm {

namespace {

// The VMM process's descriptors: 0-2 as husk's, then these two; every
// other descriptor husk had is closed in the VMM process.
constexpr int kChannelFd = 3;
constexpr int kConsoleFd = 4;
// A snapshot to restore (state, memory) and the files a snapshot goes to.
constexpr int kRestoreStateFd = 5;
constexpr int kRestoreMemoryFd = 6;
constexpr int kSaveStateFd = 7;
constexpr int kSaveMemoryFd = 8;
// The network backend's socket or tap (runtime/net/vm_network.h).
constexpr int kNetLinkFd = 9;
constexpr int kLastVmmFd = kNetLinkFd;

// The VMM process ends with this when it could not even report.
constexpr int kExitVmmSetup = 1;

// Every class a VMM process starts threads of, compiled before its control
// thread enters its own filter (compiling needs calls that filter forbids).
constexpr std::initializer_list<seccomp::ThreadClass> kVmmClasses{
    seccomp::ThreadClass::kVmm,   seccomp::ThreadClass::kVcpu,  seccomp::ThreadClass::kBlock,
    seccomp::ThreadClass::kRng,   seccomp::ThreadClass::kVsock, seccomp::ThreadClass::kNet,
    seccomp::ThreadClass::kConsole, seccomp::ThreadClass::kLoader};

// Rewrites the config's paths to those the jailed VMM sees, and binds the
// host files there: /dev/kvm, /kernel, /initrd, /disk<N>. The vsock socket
// must already be in the jail's folder.
Result<void> confine(VmConfig& config, jail::JailSpec& spec) {
  // Sources as absolute paths: the jail binds them from "/" (a relative
  // --kernel would name nothing there).
  auto bind = [&spec](std::string& path, std::string target, bool read_only) {
    spec.binds.push_back(jail::Bind{std::filesystem::absolute(path).string(), target, read_only});
    path = std::move(target);
  };
  bind(config.kvm_path, "/dev/kvm", false);
  bind(config.kernel_path, "/kernel", true);
  if (!config.initrd_path.empty()) bind(config.initrd_path, "/initrd", true);
  for (size_t i = 0; i < config.disks.size(); ++i) {
    bind(config.disks[i].path, fmt::format("/disk{}", i), config.disks[i].mode != DiskMode::kPersistent);
  }
  if (config.vsock) {
    const std::filesystem::path socket(config.vsock->uds_path);
    if (socket.parent_path() != std::filesystem::path(spec.root)) {
      return fail(fmt::format("the jailed VMM's vsock socket {} must be in its folder {}", config.vsock->uds_path,
                              spec.root));
    }
    config.vsock->uds_path = "/" + socket.filename().string();
  }
  return {};
}

void report_failure(const std::string& what) {
  ChannelMessage m;
  m.kind = ChannelKind::kBuildFailed;
  m.exit = VmExit{ExitReason::kVmmFailed, what};
  (void)send_message(kChannelFd, m);
}

// Only descriptors 0-2 and those above stay open: the channel, the
// console and the config's snapshot files, which `config` names by their
// numbers in the VMM process from here on.
void keep_only_vmm_fds(int channel, int console, VmConfig& config) {
  std::vector<std::pair<int, int>> moves{{channel, kChannelFd}, {console, kConsoleFd}};
  if (config.restore_from) {
    moves.emplace_back(config.restore_from->state_fd, kRestoreStateFd);
    moves.emplace_back(config.restore_from->memory_fd, kRestoreMemoryFd);
    config.restore_from = SnapshotFds{kRestoreStateFd, kRestoreMemoryFd};
  }
  if (config.save_to) {
    moves.emplace_back(config.save_to->state_fd, kSaveStateFd);
    moves.emplace_back(config.save_to->memory_fd, kSaveMemoryFd);
    config.save_to = SnapshotFds{kSaveStateFd, kSaveMemoryFd};
  }
  if (config.net) {
    moves.emplace_back(config.net->link_fd, kNetLinkFd);
    config.net->link_fd = kNetLinkFd;
  }
  // Out of the way first (a source may sit on another's target number).
  for (auto& [from, to] : moves) {
    if (from >= 0) from = ::fcntl(from, F_DUPFD, 100 + to);
  }
  for (const auto& [from, to] : moves) {
    if (from >= 0) ::dup2(from, to);
  }
  ::close_range(kLastVmmFd + 1, ~0U, 0);
}

// The VM's stop as husk asks it through the channel.
void on_channel(Machine& machine) {
  auto received = receive_message(kChannelFd);
  if (!received || !*received) {
    // husk is gone (killed, crashed): nobody waits for this VM.
    machine.request_stop(VmExit{ExitReason::kHostStop, "husk went away"});
    return;
  }
  if (const auto* signal = std::get_if<SignalNumber>(&**received)) {
    if (signal->signo == SIGQUIT) {
      machine.request_dump();
    } else {
      machine.request_stop(VmExit{ExitReason::kSignal, fmt::format("husk received {}", ::sigabbrev_np(signal->signo))});
    }
  } else if (const auto* m = std::get_if<ChannelMessage>(&**received)) {
    if (m->kind == ChannelKind::kStop) machine.request_stop(m->exit);
    if (m->kind == ChannelKind::kDump) machine.request_dump();
    if (m->kind == ChannelKind::kSnapshot) {
      auto saved = machine.snapshot();
      ChannelMessage reply;
      reply.kind = saved ? ChannelKind::kSnapshotDone : ChannelKind::kSnapshotFailed;
      reply.exit.detail = saved ? *saved : saved.error().message;
      (void)send_message(kChannelFd, reply);
    }
  }
}

// The VMM process: build, drop, run, report. Never returns.
// `forked`: husk's stamp just before its fork (its CPU time is husk's: this
// process's own CPU clock starts at zero).
[[noreturn]] void vmm_main(VmConfig config, const jail::JailSpec* jail, const std::function<void(Machine&)>& before_run,
                           PhaseStamp forked) {
  if (jail == nullptr) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // husk's forwarding handlers are husk's: here the stop signals wait,
  // blocked, for the VM's signalfd (as PID 1 of a jail, unblocked ones
  // without a handler would be dropped).
  set_stop_signal_target(-1);
  block_stop_signals();
  seccomp::set_report_fd(kChannelFd);
  BootTimeline started;
  started.at(BootPhase::kProcessStart) = PhaseStamp{forked.ns, 0};
  auto machine = build_machine(config, started);
  if (!machine) {
    report_failure(machine.error().message);
    ::_exit(kExitVmmSetup);
  }
  if (jail != nullptr) {
    if (auto dropped = jail::drop_privileges(*jail); !dropped) {
      report_failure("the jail: " + dropped.error().message);
      ::_exit(kExitVmmSetup);
    }
    (*machine)->mark_phase(BootPhase::kJailEntered);
  }
  if (before_run) before_run(**machine);
  if (auto compiled = seccomp::prepare(kVmmClasses); !compiled) {
    report_failure("seccomp: " + compiled.error().message);
    ::_exit(kExitVmmSetup);
  }
  (*machine)->mark_phase(BootPhase::kFiltersCompiled);
  (*machine)->set_control_filter(confine_control_thread);
  ChannelMessage built;
  built.kind = ChannelKind::kBuilt;
  built.timeline = (*machine)->timeline();
  if (!send_message(kChannelFd, built)) ::_exit(kExitVmmSetup);

  Machine& m = **machine;
  m.watch(kChannelFd, [&m] { on_channel(m); });
  auto exit = m.run();
  if (auto report = m.net_report()) {
    ChannelMessage net;
    net.kind = ChannelKind::kNetReport;
    // Within what send_message keeps of a detail (half the room after its header).
    net.exit.detail = net::encode_report(*report, (kMaxChannelMessage - 1024) / 2);
    (void)send_message(kChannelFd, net);
  }
  ChannelMessage done;
  done.kind = ChannelKind::kExit;
  done.exit = exit ? *exit : VmExit{ExitReason::kVcpuError, exit.error().message};
  done.timeline = m.timeline();
  (void)send_message(kChannelFd, done);
  // The kernel takes the VM down faster than its destructors would.
  ::_exit(0);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by {}", ::sigabbrev_np(WTERMSIG(status)));
  return "ended";
}

}  // namespace

Result<void> confine_control_thread() {
  HUSK_TRY(seccomp::prepare(kVmmClasses));
  return seccomp::enter(seccomp::ThreadClass::kVmm);
}

Result<std::unique_ptr<VmmProcess>> VmmProcess::start(VmConfig config, const VmmProcessOptions& options) {
  HUSK_TRY(validate(config));
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return fail_errno("socketpair for the VMM");
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  // husk creates the console file: the VMM process gets only its descriptor.
  UniqueFd console_file;
  int console = config.console_fd;
  if (!config.console_path.empty()) {
    console_file.reset(::open(config.console_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!console_file) return fail_errno("open console file " + config.console_path);
    console = console_file.get();
  }
  if (config.console_input_fd >= 0) return fail("a VMM process takes no console input");
  config.console_path.clear();
  config.console_fd = kConsoleFd;

  std::optional<jail::JailSpec> spec = options.jail;
  pid_t pid = -1;
  PhaseStamp fork_stamp;
  if (spec) {
    jail::sweep_stale();
    // The jail hides the CPUID cache (runtime/kvm/cpuid_cache.h) from the
    // VMM: ask it here. A failure is the VMM's to report, with KVM's error.
    if (!config.host_cpuid) {
      if (auto cpuid = kvm::host_cpuid(config.kvm_path, config.cpuid_cache_path)) config.host_cpuid = std::move(*cpuid);
    }
    config.cpuid_cache_path.clear();
    HUSK_TRY(confine(config, *spec));
    HUSK_TRY(jail::check(*spec));
    const pid_t husk = ::getpid();
    fork_stamp = stamp_now();
    auto forked = jail::fork_into_jail(*spec);
    if (!forked && ::getpid() != husk) {
      // A child of the jail failed before the VM existed: say why, and end.
      keep_only_vmm_fds(theirs.get(), console, config);
      report_failure("the jail: " + forked.error().message);
      ::_exit(kExitVmmSetup);
    }
    if (!forked) return Unexpected(forked.error());
    if (forked->jailed) {
      keep_only_vmm_fds(theirs.get(), console, config);
      // Scratch files (a copy-on-write disk's overlay) go to the jail's
      // folder: the only one it has. They are O_TMPFILE, nameless.
      ::setenv("TMPDIR", "/", 1);
      vmm_main(std::move(config), &*spec, options.before_run, fork_stamp);
    }
    pid = forked->pid;
  } else {
    fork_stamp = stamp_now();
    pid = ::fork();
    if (pid < 0) return fail_errno("fork of the VMM process");
    if (pid == 0) {
      keep_only_vmm_fds(theirs.get(), console, config);
      vmm_main(std::move(config), nullptr, options.before_run, fork_stamp);
    }
  }
  theirs.reset();
  std::unique_ptr<VmmProcess> vmm(new VmmProcess(pid, std::move(ours), spec.has_value()));
  set_stop_signal_target(vmm->channel_.get());

  // Until the VM is built: its kBuilt, its error, or its death.
  const Deadline deadline = Deadline::after(options.build_timeout);
  std::lock_guard lock(vmm->mutex_);
  for (;;) {
    pollfd p{vmm->channel_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(deadline.left().count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ::kill(pid, SIGKILL);
      vmm->reap();
      return fail(fmt::format("the VMM process did not build the VM within {} ms", options.build_timeout.count()));
    }
    auto received = receive_message(vmm->channel_.get());
    if (!received || !*received) {
      vmm->reap();
      std::string why = vmm->exit_ ? vmm->exit_->detail : "it ended";
      return fail("the VMM process ended before the VM was built: " + why);
    }
    if (auto* report = std::get_if<ReportLine>(&**received)) {
      vmm->violation_ = report->text;
      continue;
    }
    auto* m = std::get_if<ChannelMessage>(&**received);
    if (m != nullptr && m->kind == ChannelKind::kBuilt) {
      vmm->timeline_ = m->timeline;
      return vmm;
    }
    if (m != nullptr && m->kind == ChannelKind::kBuildFailed) {
      vmm->reap();
      return fail(m->exit.detail);
    }
  }
}

VmmProcess::~VmmProcess() {
  set_stop_signal_target(-1);
  std::lock_guard lock(mutex_);
  if (reaped_) return;
  if (!exit_) {
    (void)send_message(channel_.get(), ChannelMessage{ChannelKind::kStop, VmExit{ExitReason::kHostStop, "session closed"}, {}});
    const Deadline deadline = Deadline::after(std::chrono::seconds(10));
    while (!exit_ && !reaped_ && !deadline.expired()) {
      pollfd p{channel_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(deadline.left().count())) > 0) pump(false);
    }
  }
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    reap();
  }
}

void VmmProcess::reap() {
  if (reaped_) return;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (jailed_) jail::remove_cgroup(pid_);
  if (exit_) return;
  if (WIFEXITED(status) && WEXITSTATUS(status) == seccomp::kExitSeccompViolation) {
    exit_ = VmExit{ExitReason::kSeccompViolation,
                   violation_.empty() ? "a VMM thread made a forbidden system call" : violation_};
    return;
  }
  std::string why = "the VMM process " + describe_status(status);
  if (jailed_ && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) why += " (its cgroup's memory limit, or husk)";
  exit_ = VmExit{ExitReason::kVmmFailed, why};
}

void VmmProcess::pump(bool block) {
  while (!exit_) {
    pollfd p{channel_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, block ? -1 : 0);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    auto received = receive_message(channel_.get());
    if (!received) {
      // Not husk's VMM talking: take it down.
      ::kill(pid_, SIGKILL);
      reap();
      return;
    }
    if (!*received) {
      reap();
      return;
    }
    if (auto* report = std::get_if<ReportLine>(&**received)) violation_ = report->text;
    if (auto* m = std::get_if<ChannelMessage>(&**received);
        m != nullptr && (m->kind == ChannelKind::kSnapshotDone || m->kind == ChannelKind::kSnapshotFailed)) {
      snapshot_reply_ = *m;
    }
    if (auto* m = std::get_if<ChannelMessage>(&**received); m != nullptr && m->kind == ChannelKind::kNetReport) {
      // The VMM's word, parsed as untrusted (it runs beside the guest).
      if (auto report = net::decode_report(m->exit.detail)) net_report_ = std::move(*report);
    }
    if (auto* m = std::get_if<ChannelMessage>(&**received); m != nullptr && m->kind == ChannelKind::kExit) {
      exit_ = m->exit;
      timeline_ = m->timeline;
      reap();
    }
  }
}

bool VmmProcess::stopped() {
  std::lock_guard lock(mutex_);
  if (!exit_) pump(false);
  return exit_.has_value();
}

void VmmProcess::request_stop(const VmExit& exit) {
  (void)send_message(channel_.get(), ChannelMessage{ChannelKind::kStop, exit, {}});
}

void VmmProcess::request_dump() {
  (void)send_message(channel_.get(), ChannelMessage{ChannelKind::kDump, {}, {}});
}

Result<std::string> VmmProcess::snapshot(std::chrono::milliseconds timeout) {
  std::lock_guard lock(mutex_);
  if (exit_) return fail("the VM has stopped");
  snapshot_reply_.reset();
  HUSK_TRY(send_message(channel_.get(), ChannelMessage{ChannelKind::kSnapshot, {}, {}}));
  const Deadline deadline = Deadline::after(timeout);
  while (!snapshot_reply_ && !exit_) {
    if (deadline.expired()) return fail(fmt::format("the VMM did not write the snapshot within {} ms", timeout.count()));
    pollfd p{channel_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(deadline.left().count(), 100))) > 0) pump(false);
  }
  if (!snapshot_reply_) return fail(fmt::format("the VM stopped during its snapshot: {}", exit_->detail));
  if (snapshot_reply_->kind == ChannelKind::kSnapshotFailed) return fail(snapshot_reply_->exit.detail);
  return snapshot_reply_->exit.detail;
}

Result<VmExit> VmmProcess::wait() {
  std::lock_guard lock(mutex_);
  pump(true);
  if (!exit_) reap();
  return *exit_;
}

std::optional<net::NetReport> VmmProcess::net_report() const {
  std::lock_guard lock(mutex_);
  return net_report_;
}

BootTimeline VmmProcess::timeline() const {
  std::lock_guard lock(mutex_);
  return timeline_;
}

}  // namespace husk::vmm
