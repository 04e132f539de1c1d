// husk-oci exec: another process in a created or running container's VM,
// on a connection of its own to the VM's agent (the agent serves several).
// In the foreground it runs attached to husk-oci's stdio and exits with
// the process's status. With --detach (how containerd's shim and conmon
// call it) it forks an attacher that holds the process's stdio, waits for
// the process to start, writes the attacher's pid to --pid-file and
// returns; the caller waits for that pid, whose exit status is the
// process's, and signals it to signal the process.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/oci/oci_cli.h"
#include "runtime/common/deadline.h"
#include "runtime/common/file.h"
#include "runtime/common/scope_guard.h"
#include "runtime/oci/attach.h"
#include "runtime/oci/console.h"
#include "runtime/oci/keeper.h"
#include "runtime/oci/plan.h"
#include "runtime/oci/spec.h"

namespace husk::oci_cli {

namespace proto = agent::proto;

namespace {

struct ExecFlags {
  std::string id;
  std::vector<std::string> command;
  std::string process_file;
  std::string pid_file;
  std::string console_socket;
  std::string cwd;
  std::vector<std::string> env;
  std::string user;
  std::vector<uint32_t> additional_gids;
  bool tty = false;
  bool detach = false;
  std::string ignored;
  bool ignored_flag = false;
  uint32_t preserve_fds = 0;
};

constexpr std::chrono::seconds kStartTimeout{30};

Result<oci::Process> process_from(const ExecFlags& f) {
  if (!f.process_file.empty()) {
    HUSK_TRY_ASSIGN(const std::string text, read_text_file(f.process_file, 4u << 20));
    auto p = oci::parse_process(text);
    if (!p) return fail(f.process_file + ": " + p.error().message);
    return p;
  }
  oci::Process p;
  p.args = f.command;
  if (p.args.empty()) return fail("exec: no command given (give it after the id, or --process FILE)");
  p.terminal = f.tty;
  p.env = f.env;
  if (!f.cwd.empty()) p.cwd = f.cwd;
  p.additional_gids = f.additional_gids;
  if (!f.user.empty()) {
    const size_t colon = f.user.find(':');
    try {
      p.uid = static_cast<uint32_t>(std::stoul(f.user.substr(0, colon)));
      if (colon != std::string::npos) p.gid = static_cast<uint32_t>(std::stoul(f.user.substr(colon + 1)));
    } catch (const std::exception&) {
      return fail("--user " + f.user + ": expected UID[:GID] as numbers");
    }
  }
  return p;
}

// The attacher's work: connect, run, end as the process did. `ready_fd`
// gets "ok" once the process started, else "error <why>".
oci::KeeperEnd attach(const std::string& vsock_path, agent::ExecRequest req, const oci::Stdio& io, int ready_fd) {
  const auto report = [&ready_fd](const std::string& line) {
    if (ready_fd < 0) return;
    oci::write_all(ready_fd, line);
    ::close(ready_fd);
    ready_fd = -1;
  };
  auto events = oci::Events::watch("");
  auto agent = events ? agent::AgentClient::connect_vsock_uds(vsock_path, proto::kDefaultVsockPort)
                      : Result<agent::AgentClient>(Unexpected(events.error()));
  if (agent) {
    if (auto hello = agent->hello(); !hello) agent = Unexpected(hello.error());
  }
  if (!agent) {
    report("error cannot reach the container's VM: " + agent.error().message + "\n");
    return oci::KeeperEnd{255, 0};
  }
  const oci::ProcessEnd end = oci::run_attached(*agent, std::move(req), io, *events, [&] { report("ok\n"); });
  if (!end.error.empty()) {
    spdlog::error("{}", end.error);
    report("error " + end.error + "\n");
  }
  return oci::KeeperEnd{end.status, end.signal};
}

int run_exec(const Globals& g, const ExecFlags& f) {
  auto state = oci::StateStore(g.root).load(f.id);
  if (!state) return failed(state.error());
  const oci::Status now = oci::current_status(*state);
  if (now != oci::Status::kCreated && now != oci::Status::kRunning) {
    return failed(fmt::format("cannot exec in container {}: it is {}", f.id, oci::status_name(now)));
  }
  auto process = process_from(f);
  if (!process) return failed(process.error());
  std::vector<oci::Note> notes;
  auto req = oci::plan_exec(*process, notes);
  if (!req) return failed(req.error());
  for (const oci::Note& n : notes) {
    if (n.warning) spdlog::warn("exec: {}", n.text);
  }
  if (f.preserve_fds > 0) spdlog::warn("exec: --preserve-fds {}: extra files are not passed into the VM", f.preserve_fds);
  oci::block_forwarded_signals();

  std::optional<oci::Console> console;
  oci::Stdio io;
  if (req->pty && !f.console_socket.empty()) {
    auto opened = oci::open_console(req->rows, req->cols);
    if (!opened) return failed(opened.error());
    if (auto sent = oci::send_console(f.console_socket, opened->master.get(), opened->name); !sent) {
      return failed(sent.error());
    }
    opened->master.reset();
    console = std::move(*opened);
    io = oci::Stdio{console->slave.get(), console->slave.get(), console->slave.get(), true};
  } else if (req->pty) {
    // In the foreground on husk-oci's own terminal.
    if (::isatty(STDIN_FILENO) == 0) return failed("exec --tty: stdin is not a terminal and no --console-socket given");
    io.terminal = true;
  }
  if (!f.detach) {
    // On husk-oci's own terminal, raw while the process runs: the guest's
    // terminal does the echo and the line editing.
    termios saved{};
    const bool raw = io.terminal && !console && ::tcgetattr(STDIN_FILENO, &saved) == 0;
    if (raw) {
      termios t = saved;
      ::cfmakeraw(&t);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &t);
    }
    ScopeGuard restore([&] {
      if (raw) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    });
    const oci::KeeperEnd end = attach(state->vsock_path, std::move(*req), io, -1);
    return end.signal != 0 ? 128 + end.signal : end.status;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failed(fail_errno("pipe").value());
  UniqueFd ready_read(fds[0]);
  UniqueFd ready_write(fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return failed(fail_errno("fork").value());
  if (pid == 0) {
    ready_read.reset();
    ::setsid();
    close_inherited_fds();
    if (console) {
      ::ioctl(console->slave.get(), TIOCSCTTY, 0);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(console->slave.get(), fd);
      io = oci::Stdio{0, 1, 2, true};
    }
    oci::exit_as(attach(state->vsock_path, std::move(*req), io, ready_write.release()));
  }
  ready_write.reset();
  console.reset();
  std::string report;
  char buf[4096];
  const Deadline deadline = Deadline::after(kStartTimeout);
  for (;;) {
    const int rc = poll_until(ready_read.get(), POLLIN, deadline);
    if (rc <= 0) break;
    const ssize_t n = ::read(ready_read.get(), buf, sizeof(buf));
    if (n <= 0) break;
    report.append(buf, static_cast<size_t>(n));
    if (const size_t nl = report.find('\n'); nl != std::string::npos) {
      report.resize(nl);
      break;
    }
  }
  if (report != "ok") {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return failed(report.rfind("error ", 0) == 0 ? report.substr(6) : "the exec'd process did not start");
  }
  if (!f.pid_file.empty()) {
    if (auto written = write_pid_file(f.pid_file, pid); !written) return failed(written.error());
  }
  return 0;
}

}  // namespace

void add_exec_command(CLI::App& app, const Globals& g, int& exit_code) {
  auto f = std::make_shared<ExecFlags>();
  CLI::App* c = app.add_subcommand("exec", "Run another process in a container's VM");
  c->add_option("-p,--process", f->process_file, "the process as JSON (the runtime spec's process object)");
  c->add_flag("-d,--detach", f->detach, "return once the process has started");
  c->add_option("--pid-file", f->pid_file, "write the pid that stands for the process here");
  c->add_option("--console-socket", f->console_socket, "Unix socket that receives the terminal's master");
  c->add_flag("-t,--tty", f->tty, "a terminal for the process");
  c->add_option("--cwd", f->cwd, "working folder in the container");
  c->add_option("-e,--env", f->env, "KEY=VALUE; repeatable")->allow_extra_args(false);
  c->add_option("-u,--user", f->user, "UID[:GID]");
  c->add_option("-g,--additional-gids", f->additional_gids, "more groups (not supported: logged)")
      ->allow_extra_args(false);
  c->add_option("--process-label,--apparmor,-c,--cap", f->ignored, "accepted for runc's callers (the VM is the boundary)")
      ->allow_extra_args(false);
  c->add_flag("--no-new-privs,--ignore-paused", f->ignored_flag, "accepted for runc's callers");
  c->add_option("--preserve-fds", f->preserve_fds, "extra files to pass (not supported: logged)");
  c->add_option("id", f->id, "the container's id")->required();
  c->add_option("command", f->command, "the command and its arguments");
  on_parsed(c, g, exit_code, [&g, f] { return run_exec(g, *f); });
}

}  // namespace husk::oci_cli
