// husk-oci features and ps, and runc's commands husk-oci does not support,
// which fail with a clear reason rather than as unknown commands.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/oci/oci_cli.h"
#include "cli/version.h"

namespace husk::oci_cli {

namespace {

// What husk-oci honours, in the runtime spec's features format
// (features.md): callers read it to know what they may ask for.
nlohmann::json features() {
  return nlohmann::json{
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", oci::kOciVersion},
      {"hooks", nlohmann::json::array()},
      {"mountOptions", {"bind", "rbind", "ro", "rw"}},
      {"linux",
       {{"namespaces", {"pid", "network", "ipc", "uts", "mount", "cgroup"}},
        {"capabilities", nlohmann::json::array()},
        {"cgroup", {{"v1", false}, {"v2", true}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp", {{"enabled", false}}},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations",
       {{"io.husk.version", cli::kHuskVersion},
        {"io.husk.isolation", "microvm"},
        {"io.husk.vm.memory_mib", "the VM's memory in MiB (annotation)"},
        {"io.husk.vm.vcpus", "the VM's vCPUs (annotation)"}}}};
}

}  // namespace

void add_info_commands(CLI::App& app, const Globals& g, int& exit_code) {
  CLI::App* f = app.add_subcommand("features", "Print what husk-oci supports (JSON)");
  on_parsed(f, g, exit_code, [] {
    fmt::print("{}\n", features().dump(2));
    return 0;
  });

  struct PsArgs {
    std::string id;
    std::string format = "table";
  };
  auto ps = std::make_shared<PsArgs>();
  CLI::App* p = app.add_subcommand("ps", "The host processes of a container: its keeper");
  p->add_option("-f,--format", ps->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  p->add_option("id", ps->id, "the container's id")->required();
  on_parsed(p, g, exit_code, [&g, ps] {
    auto s = oci::StateStore(g.root).load(ps->id);
    if (!s) return failed(s.error());
    const bool alive = oci::current_status(*s) != oci::Status::kStopped;
    if (ps->format == "json") {
      fmt::print("{}\n", alive ? nlohmann::json::array({s->pid}).dump() : "[]");
    } else {
      fmt::print("PID\n");
      if (alive) fmt::print("{}\n", s->pid);
    }
    return 0;
  });

  // runc's commands that need what a VM does not have here yet.
  const std::pair<const char*, const char*> unsupported[] = {
      {"pause", "pausing a container's VM is not supported yet"},
      {"resume", "pausing a container's VM is not supported yet"},
      {"update", "changing a running container's resources is not supported: its VM's size is fixed at create"},
      {"checkpoint", "checkpoints are not supported"},
      {"restore", "checkpoints are not supported"},
      {"events", "events and stats are not supported yet"},
  };
  for (const auto& [name, why] : unsupported) {
    CLI::App* c = app.add_subcommand(name, std::string("Not supported: ") + why);
    c->allow_extras();
    const std::string reason = why;
    on_parsed(c, g, exit_code, [reason, name = std::string(name)] { return failed(name + ": " + reason); });
  }
}

}  // namespace husk::oci_cli
