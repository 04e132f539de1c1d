// husk-oci start, state, kill, delete and list: a container's life after
// create, through its state file and its keeper's control socket.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/oci/oci_cli.h"
#include "runtime/common/deadline.h"
#include "runtime/oci/control.h"

namespace husk::oci_cli {

namespace {

constexpr std::chrono::seconds kControlTimeout{10};
// How long delete --force waits for a killed keeper to shut its VM down
// before it kills the keeper itself (its VMM dies with it).
constexpr std::chrono::seconds kStopWait{10};

int start(const Globals& g, const std::string& id) {
  oci::StateStore store(g.root);
  auto state = store.load(id);
  if (!state) return failed(state.error());
  const oci::Status now = oci::current_status(*state);
  if (now != oci::Status::kCreated) {
    return failed(fmt::format("cannot start container {}: it is {}, not created", id, oci::status_name(now)));
  }
  auto started = oci::control_call(store.control_path(id), {oci::ControlRequest::Kind::kStart, 0}, kControlTimeout);
  if (!started) return failed("cannot start container " + id + ": " + started.error().message);
  return 0;
}

int state(const Globals& g, const std::string& id) {
  auto s = oci::StateStore(g.root).load(id);
  if (!s) return failed(s.error());
  fmt::print("{}\n", oci::oci_state_json(*s).dump(2));
  return 0;
}

// Waits until the keeper of `s` is gone, up to `wait`.
bool wait_gone(const oci::ContainerState& s, std::chrono::milliseconds wait) {
  const Deadline d = Deadline::after(wait);
  while (oci::current_status(s) != oci::Status::kStopped) {
    if (d.expired()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int kill(const Globals& g, const std::string& id, const std::string& signal_text, bool all) {
  auto signo = oci::parse_signal(signal_text);
  if (!signo) return failed(signo.error());
  oci::StateStore store(g.root);
  auto s = store.load(id);
  if (!s) return failed(s.error());
  const oci::Status now = oci::current_status(*s);
  if (now == oci::Status::kStopped) return failed("cannot signal " + id + ": container not running");
  if (all) spdlog::debug("kill --all: the signal goes to the process group of the container's process");
  auto sent = oci::control_call(store.control_path(id), {oci::ControlRequest::Kind::kKill, *signo}, kControlTimeout);
  if (!sent) return failed(fmt::format("cannot signal container {}: {}", id, sent.error().message));
  return 0;
}

int remove(const Globals& g, const std::string& id, bool force) {
  oci::StateStore store(g.root);
  auto s = store.load(id);
  if (!s) {
    // runc: deleting what is not there fails, except with --force.
    if (force && s.error().code == ENOENT) return 0;
    return failed(s.error());
  }
  const oci::Status now = oci::current_status(*s);
  if (now == oci::Status::kRunning && !force) {
    return failed(fmt::format("cannot delete container {} that is not stopped: running", id));
  }
  if (now != oci::Status::kStopped) {
    // created (runc deletes those without --force), creating, or running
    // with --force: the keeper kills the process and shuts the VM down.
    (void)oci::control_call(store.control_path(id), {oci::ControlRequest::Kind::kKill, SIGKILL}, kControlTimeout);
    if (!wait_gone(*s, kStopWait)) {
      spdlog::warn("container {}: its keeper (pid {}) did not stop; killing it", id, s->pid);
      if (oci::process_start_time(s->pid) == s->pid_start) ::kill(s->pid, SIGKILL);
      (void)wait_gone(*s, kStopWait);
    }
  }
  if (auto removed = store.remove(id); !removed) return failed(removed.error());
  return 0;
}

int list(const Globals& g, const std::string& format, bool quiet) {
  oci::StateStore store(g.root);
  auto ids = store.ids();
  if (!ids) return failed(ids.error());
  nlohmann::json all = nlohmann::json::array();
  std::vector<oci::ContainerState> states;
  for (const std::string& id : *ids) {
    if (auto s = store.load(id)) states.push_back(std::move(*s));
  }
  if (quiet) {
    for (const auto& s : states) fmt::print("{}\n", s.id);
    return 0;
  }
  if (format == "json") {
    for (const auto& s : states) all.push_back(oci::oci_state_json(s));
    fmt::print("{}\n", all.dump());
    return 0;
  }
  fmt::print("{:<24} {:<8} {:<10} {:<40} {:<22} {}\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
  for (const auto& s : states) {
    const oci::Status now = oci::current_status(s);
    fmt::print("{:<24} {:<8} {:<10} {:<40} {:<22} {}\n", s.id, now == oci::Status::kStopped ? 0 : s.pid,
               oci::status_name(now), s.bundle, s.created, "root");
  }
  return 0;
}

}  // namespace

Result<void> write_pid_file(const std::string& path, int pid) {
  const std::string tmp = path + ".husk-tmp";
  const std::string text = std::to_string(pid);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("create the pid file " + tmp);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return fail_errno("write the pid file " + tmp);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail_errno("rename the pid file to " + path);
  return {};
}

void add_lifecycle_commands(CLI::App& app, const Globals& g, int& exit_code) {
  auto id = std::make_shared<std::string>();
  CLI::App* s = app.add_subcommand("start", "Start the process of a created container");
  s->add_option("id", *id, "the container's id")->required();
  on_parsed(s, g, exit_code, [&g, id] { return start(g, *id); });

  auto state_id = std::make_shared<std::string>();
  CLI::App* st = app.add_subcommand("state", "Print a container's state (JSON, the runtime spec's)");
  st->add_option("id", *state_id, "the container's id")->required();
  on_parsed(st, g, exit_code, [&g, state_id] { return state(g, *state_id); });

  struct KillArgs {
    std::string id;
    std::string signal = "SIGTERM";
    bool all = false;
  };
  auto k = std::make_shared<KillArgs>();
  CLI::App* kc = app.add_subcommand("kill", "Send a signal to a container's process");
  kc->add_flag("-a,--all", k->all, "every process of the container (its process group)");
  kc->add_option("id", k->id, "the container's id")->required();
  kc->add_option("signal", k->signal, "the signal, by number or name")->capture_default_str();
  on_parsed(kc, g, exit_code, [&g, k] { return kill(g, k->id, k->signal, k->all); });

  struct DeleteArgs {
    std::string id;
    bool force = false;
  };
  auto d = std::make_shared<DeleteArgs>();
  CLI::App* dc = app.add_subcommand("delete", "Delete a container: its VM stopped, its state removed");
  dc->add_flag("-f,--force", d->force, "kill a running container first");
  dc->add_option("id", d->id, "the container's id")->required();
  on_parsed(dc, g, exit_code, [&g, d] { return remove(g, d->id, d->force); });

  struct ListArgs {
    std::string format = "table";
    bool quiet = false;
  };
  auto l = std::make_shared<ListArgs>();
  CLI::App* lc = app.add_subcommand("list", "List the containers");
  lc->add_option("-f,--format", l->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  lc->add_flag("-q,--quiet", l->quiet, "ids only");
  on_parsed(lc, g, exit_code, [&g, l] { return list(g, l->format, l->quiet); });
}

}  // namespace husk::oci_cli
