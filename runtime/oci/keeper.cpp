#include "runtime/oci/keeper.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/job/file_transfer.h"
#include "runtime/job/job_runner.h"
#include "runtime/oci/attach.h"
#include "runtime/oci/events.h"

namespace husk::oci {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

void report(int fd, const std::string& line) {
  if (fd < 0) return;
  write_all(fd, line);
  ::close(fd);
}

// runc resolves the program before create returns and fails on a missing
// one; this does the same through the agent's Stat.
Result<void> check_program(agent::AgentClient& agent, const agent::ExecRequest& process) {
  const std::string& name = process.argv.front();
  const auto runnable = [&](const std::string& path) {
    auto st = agent.stat(path);
    return st && (st->mode & S_IFMT) == S_IFREG && (st->mode & 0111) != 0;
  };
  if (name.find('/') != std::string::npos) {
    const std::string path = name.front() == '/' ? name : process.cwd + "/" + name;
    if (runnable(path)) return {};
    return fail(fmt::format("exec: \"{}\": no such file, or not an executable file", name));
  }
  std::string path_var = kDefaultPath;
  for (const std::string& kv : process.env) {
    if (kv.rfind("PATH=", 0) == 0) path_var = kv.substr(5);
  }
  size_t begin = 0;
  while (begin <= path_var.size()) {
    const size_t end = std::min(path_var.find(':', begin), path_var.size());
    const std::string dir = path_var.substr(begin, end - begin);
    if (runnable((dir.empty() ? "." : dir) + "/" + name)) return {};
    begin = end + 1;
  }
  return fail(fmt::format("exec: \"{}\": executable file not found in $PATH", name));
}

class Keeper {
 public:
  explicit Keeper(const KeeperOptions& o) : o_(o), store_(o.state_root) {}

  KeeperEnd run() {
    auto loaded = store_.load(o_.id);
    if (!loaded) return failed_to_create(loaded.error().message);
    state_ = std::move(*loaded);
    state_.pid = ::getpid();
    state_.pid_start = process_start_time(state_.pid);
    auto events = Events::watch(store_.control_path(o_.id));
    if (!events) return failed_to_create(events.error().message);
    events_ = std::make_unique<Events>(std::move(*events));
    if (auto booted = boot(); !booted) return failed_to_create(booted.error().message);
    state_.status = Status::kCreated;
    state_.vsock_path = vm_->vsock_path();
    if (auto saved = store_.save(state_); !saved) return failed_to_create(saved.error().message);
    report(o_.ready_fd, "ok\n");
    if (!o_.start_at_once) {
      if (auto killed = wait_for_start()) return stop(KeeperEnd{128 + *killed, *killed});
    }
    return run_process();
  }

 private:
  Result<void> boot() {
    job::Job j;
    j.source = "container " + o_.id;
    j.vm.kernel = o_.kernel;
    j.vm.initramfs = o_.initramfs;
    j.vm.root_disk = vmm::DiskConfig{o_.image, vmm::DiskMode::kReadOnly};
    j.vm.vcpus = o_.plan.vcpus;
    j.vm.memory_mib = o_.plan.memory_mib;
    j.vm.boot_timeout = o_.boot_timeout;
    job::RunnerOptions runner;
    runner.jail = o_.jail;
    HUSK_TRY_ASSIGN(vm_, job::start_vm(j, runner));
    agent::AgentClient& agent = vm_->agent();
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    HUSK_TRY(agent.set_clock(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())));
    HUSK_TRY(agent.set_hostname(o_.plan.hostname.empty() ? "husk" : o_.plan.hostname));
    std::vector<job::FileUpload> uploads;
    for (const FileCopy& c : o_.plan.copies) uploads.push_back(job::FileUpload{c.source, c.destination, std::nullopt});
    HUSK_TRY(job::upload_files(agent, uploads));
    return check_program(agent, o_.plan.process);
  }

  KeeperEnd failed_to_create(const std::string& why) {
    spdlog::error("{}", why);
    state_.status = Status::kStopped;
    state_.error = why;
    state_.exit_status = 255;
    if (!state_.id.empty()) (void)store_.save(state_);
    report(o_.ready_fd, "error " + why + "\n");
    vm_.reset();
    return KeeperEnd{255, 0};
  }

  // Waits for start; the signal to die by when the container is killed first.
  std::optional<int> wait_for_start() {
    for (;;) {
      for (Happening& h : events_->next(-1)) {
        int signo = h.signo;
        if (h.request) {
          if (h.request->request.kind == ControlRequest::Kind::kStart) {
            ControlServer::answer(*h.request, {});
            return std::nullopt;
          }
          signo = h.request->request.signo;
          ControlServer::answer(*h.request, {});
        }
        if (signo != 0 && !ignored_by_default(signo)) return signo;
      }
    }
  }

  KeeperEnd run_process() {
    state_.status = Status::kRunning;
    (void)store_.save(state_);
    const Stdio io{o_.stdin_fd, o_.stdout_fd, o_.stderr_fd, o_.terminal};
    const ProcessEnd end = run_attached(vm_->agent(), o_.plan.process, io, *events_);
    return stop(KeeperEnd{end.status, end.signal},
                end.error.empty() ? std::nullopt : std::optional<std::string>(end.error));
  }

  // Records the end and shuts the VM down; `error`: husk or the VM failed
  // under the process.
  KeeperEnd stop(KeeperEnd end, const std::optional<std::string>& error = std::nullopt) {
    if (error) {
      spdlog::error("{}", *error);
      state_.error = *error;
    }
    state_.status = Status::kStopped;
    state_.exit_status = end.status;
    (void)store_.save(state_);
    if (vm_) {
      if (!vm_->vm_stopped()) (void)vm_->finish(std::chrono::seconds(2));
      vm_.reset();
    }
    return end;
  }

  const KeeperOptions& o_;
  StateStore store_;
  ContainerState state_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<agent::VmSession> vm_;
};

}  // namespace

KeeperEnd run_keeper(const KeeperOptions& options) {
  // The forwarded signals wait for the signalfd from the start: one that
  // comes while the VM boots is handled once it is up.
  block_forwarded_signals();
  Keeper keeper(options);
  return keeper.run();
}

void exit_as(const KeeperEnd& end) {
  if (end.signal != 0) {
    ::signal(end.signal, SIG_DFL);
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, end.signal);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(end.signal);
    // A signal whose default action does not end the process (none of the
    // ones a process dies by): the shell's convention instead.
  }
  ::_exit(end.status & 0xff);
}

}  // namespace husk::oci
