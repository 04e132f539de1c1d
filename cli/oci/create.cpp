// husk-oci create and run. create does what can fail before the container
// exists (the bundle, the plan, the root image, the console), records the
// container as "creating", forks its keeper (runtime/oci/keeper.h) and
// waits for the keeper's word: "ok" once the VM is up and the process's
// program found, or the reason it is not. Then it writes the keeper's pid
// to --pid-file and exits; the keeper, orphaned, is adopted by the caller's
// subreaper (containerd's shim, conmon), which waits for it. run is create
// and start, and in the foreground waits for the keeper too.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/guest_paths.h"
#include "cli/oci/oci_cli.h"
#include "cli/sandbox_flags.h"
#include "runtime/common/deadline.h"
#include "runtime/oci/console.h"
#include "runtime/oci/control.h"
#include "runtime/oci/keeper.h"
#include "runtime/oci/rootfs_image.h"
#include "runtime/oci/spec.h"

namespace husk::oci_cli {

namespace {

struct CreateFlags {
  std::string id;
  std::string bundle = ".";
  std::string pid_file;
  std::string console_socket;
  bool detach = false;  // run
  bool no_pivot = false;
  bool no_new_keyring = false;
  bool keep = false;
  uint32_t preserve_fds = 0;
};

// How long create waits for the keeper: the VM's boot has its own deadline
// inside the keeper; this only ends a keeper that hangs outside it.
constexpr std::chrono::seconds kBootTimeout{60};
constexpr std::chrono::seconds kCreateGrace{30};

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)));
}

void log_notes(const std::vector<oci::Note>& notes) {
  for (const oci::Note& n : notes) {
    if (n.warning) {
      spdlog::warn("{}", n.text);
    } else {
      spdlog::info("{}", n.text);
    }
  }
}

Result<std::string> existing(const std::string& path, const char* what, const char* env) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail(fmt::format("the guest {} {} does not exist (set {} or build it with `make build guest`)", what, path,
                            env));
  }
  return path;
}

// Reads the keeper's one-line report from `fd` within `deadline` (up to
// its newline: the VM's process holds a copy of the pipe, so no end of
// file comes while the VM runs).
Result<std::string> read_report(int fd, Deadline deadline) {
  std::string text;
  char buf[4096];
  for (;;) {
    const int rc = poll_until(fd, POLLIN, deadline);
    if (rc < 0) return fail_errno("poll the keeper's report");
    if (rc == 0) return fail("the container's keeper did not report within its deadline");
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return text;
    text.append(buf, static_cast<size_t>(n));
    if (const size_t nl = text.find('\n'); nl != std::string::npos) return text.substr(0, nl);
  }
}

struct Created {
  int keeper = 0;
};

Result<Created> create_container(const Globals& g, const CreateFlags& f, bool start_at_once) {
  HUSK_TRY(oci::check_id(f.id));
  std::string bundle = std::filesystem::absolute(f.bundle).lexically_normal().string();
  if (bundle.size() > 1 && bundle.back() == '/') bundle.pop_back();
  HUSK_TRY_ASSIGN(const oci::Spec spec, oci::load_bundle(bundle));
  oci::PlanDefaults defaults;
  defaults.host_cpus = static_cast<uint32_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  HUSK_TRY_ASSIGN(oci::ContainerPlan plan, oci::plan_container(spec, defaults));
  log_notes(plan.notes);
  if (f.preserve_fds > 0) spdlog::warn("--preserve-fds {}: extra files are not passed into the VM", f.preserve_fds);
  if (plan.process.pty && f.console_socket.empty()) {
    return fail("process.terminal is true but no --console-socket was given: the terminal has nowhere to go");
  }
  HUSK_TRY_ASSIGN(const std::string kernel, existing(cli::default_kernel_path(), "kernel", "HUSK_KERNEL"));
  HUSK_TRY_ASSIGN(const std::string initramfs, existing(cli::default_initrd_path(), "initramfs", "HUSK_INITRD"));
  oci::ImageCacheOptions cache;
  const char* cache_env = std::getenv("HUSK_OCI_CACHE");
  cache.dir = cache_env != nullptr && *cache_env != '\0' ? cache_env : oci::default_image_cache_dir();
  HUSK_TRY_ASSIGN(const oci::RootfsImage image, oci::rootfs_image(plan.rootfs, cache));
  spdlog::debug("root image {} ({}; hashed in {} ms, built in {} ms)", image.path,
                image.built ? "built" : "cached", image.hash_time.count(), image.build_time.count());
  job::VmSpec shape;
  shape.vcpus = plan.vcpus;
  shape.memory_mib = plan.memory_mib;
  HUSK_TRY_ASSIGN(std::optional<jail::JailSpec> jail, cli::jail_for(cli::SandboxFlags{}, shape));

  oci::StateStore store(g.root);
  oci::ContainerState state;
  state.id = f.id;
  state.bundle = bundle;
  state.rootfs = plan.rootfs;
  state.created = now_rfc3339();
  state.annotations = spec.annotations;
  state.image = image.path;
  HUSK_TRY(store.create(state));

  std::optional<oci::Console> console;
  if (plan.process.pty) {
    auto opened = oci::open_console(plan.process.rows, plan.process.cols);
    if (opened) {
      auto sent = oci::send_console(f.console_socket, opened->master.get(), opened->name);
      if (!sent) opened = Unexpected(sent.error());
    }
    if (!opened) {
      (void)store.remove(f.id);
      return Unexpected(opened.error());
    }
    opened->master.reset();
    console = std::move(*opened);
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    (void)store.remove(f.id);
    return fail_errno("pipe");
  }
  UniqueFd report_read(pipe_fds[0]);
  UniqueFd report_write(pipe_fds[1]);
  const pid_t pid = ::fork();
  if (pid < 0) {
    (void)store.remove(f.id);
    return fail_errno("fork the container's keeper");
  }
  if (pid == 0) {
    report_read.reset();
    ::setsid();
    close_inherited_fds();
    oci::KeeperOptions k;
    if (console) {
      // The keeper's controlling terminal: a resize of the caller's master
      // reaches it as SIGWINCH. Its stdio is the terminal only, so it holds
      // none of the caller's pipes (go-runc waits for a create's output
      // pipe to close when it has no stdio of its own).
      ::ioctl(console->slave.get(), TIOCSCTTY, 0);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(console->slave.get(), fd);
      k.terminal = true;
    }
    k.id = f.id;
    k.state_root = g.root;
    k.plan = std::move(plan);
    k.image = image.path;
    k.kernel = kernel;
    k.initramfs = initramfs;
    k.jail = std::move(jail);
    k.boot_timeout = kBootTimeout;
    k.ready_fd = report_write.release();
    k.start_at_once = start_at_once;
    oci::exit_as(oci::run_keeper(k));
  }
  report_write.reset();
  console.reset();
  auto report = read_report(report_read.get(), Deadline::after(kBootTimeout + kCreateGrace));
  if (report && *report == "ok") return Created{pid};
  const std::string why = !report ? report.error().message
                          : report->rfind("error ", 0) == 0 ? report->substr(6)
                          : "the container's keeper ended before the container was created";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  (void)store.remove(f.id);
  return fail(why);
}

// The keeper of `run` in the foreground, for the forwarding handler.
volatile pid_t g_keeper = 0;

int wait_keeper(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

void add_create_flags(CLI::App* cmd, CreateFlags& f) {
  cmd->add_option("-b,--bundle", f.bundle, "the bundle: the folder of config.json")->capture_default_str();
  cmd->add_option("--pid-file", f.pid_file, "write the container's pid (its keeper's) here");
  cmd->add_option("--console-socket", f.console_socket,
                  "Unix socket that receives the terminal's master (process.terminal)");
  cmd->add_flag("--no-pivot", f.no_pivot, "accepted for runc's callers (the root is the VM's own)");
  cmd->add_flag("--no-new-keyring", f.no_new_keyring, "accepted for runc's callers");
  cmd->add_option("--preserve-fds", f.preserve_fds, "extra files to pass (not supported: logged)");
  cmd->add_option("id", f.id, "the container's id")->required();
}

int run_create(const Globals& g, const CreateFlags& f, bool run) {
  auto created = create_container(g, f, run);
  if (!created) return failed(created.error());
  if (!f.pid_file.empty()) {
    if (auto written = write_pid_file(f.pid_file, created->keeper); !written) return failed(written.error());
  }
  if (!run || f.detach) return 0;
  // In the foreground: the signals the caller gets go to the container.
  g_keeper = created->keeper;
  struct sigaction forward {};
  forward.sa_handler = [](int signo) { ::kill(g_keeper, signo); };
  for (int s : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2}) ::sigaction(s, &forward, nullptr);
  const int status = wait_keeper(created->keeper);
  if (!f.keep) (void)oci::StateStore(g.root).remove(f.id);
  return status;
}

}  // namespace

void add_create_commands(CLI::App& app, const Globals& g, int& exit_code) {
  auto create = std::make_shared<CreateFlags>();
  CLI::App* c = app.add_subcommand("create", "Create a container: boot its VM, ready to start its process");
  add_create_flags(c, *create);
  on_parsed(c, g, exit_code, [&g, create] { return run_create(g, *create, false); });

  auto run = std::make_shared<CreateFlags>();
  CLI::App* r = app.add_subcommand("run", "Create and start a container; wait for it unless --detach");
  add_create_flags(r, *run);
  r->add_flag("-d,--detach", run->detach, "return once the process has started");
  r->add_flag("--keep", run->keep, "keep the container's state after it ends");
  on_parsed(r, g, exit_code, [&g, run] { return run_create(g, *run, true); });
}

}  // namespace husk::oci_cli
