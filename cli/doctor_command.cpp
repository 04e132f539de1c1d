#include "cli/doctor_command.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/host/host_report.h"
#include "runtime/jail/jail.h"

namespace husk::cli {

namespace {

constexpr int kExitCannotRun = 1;

// Whether `husk run` can jail its VMM here (the default as root). Guests
// run without it too (--no-jail), so it does not change the exit code.
host::Check jail_check() {
  jail::JailSpec spec;
  auto ok = jail::check(spec);
  if (ok) {
    return {"jail", true,
            spec.user_namespace ? "the VMM can be jailed through a user namespace (--jail)"
                                : "the VMM is jailed: namespaces, pivot_root, cgroup v2 (husk run as root)",
            ""};
  }
  return {"jail", false, ok.error().message, "give husk what the message names, or run it with --no-jail"};
}

void print_text(const host::HostReport& report) {
  for (const host::Check& check : report.checks) {
    fmt::print("{} {:<36} {}\n", check.ok ? "ok  " : "FAIL", check.name, check.detail);
    if (!check.ok && !check.fix.empty()) fmt::print("     fix: {}\n", check.fix);
  }
  fmt::print("\n{}\n", report.summary);
}

void print_json(const host::HostReport& report) {
  nlohmann::json j;
  j["can_run_guests"] = report.can_run_guests;
  j["kvm_module"] = report.kvm_module;
  j["summary"] = report.summary;
  j["checks"] = nlohmann::json::array();
  for (const host::Check& check : report.checks) {
    j["checks"].push_back(
        {{"name", check.name}, {"ok", check.ok}, {"detail", check.detail}, {"fix", check.fix}});
  }
  fmt::print("{}\n", j.dump(2));
}

}  // namespace

void add_doctor_command(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<bool>(false);
  auto kvm_path = std::make_shared<std::string>("/dev/kvm");
  CLI::App* cmd = app.add_subcommand("doctor", "Check whether this host can run husk guests");
  cmd->add_flag("--json", *json, "print the report as JSON");
  cmd->add_option("--kvm", *kvm_path, "the KVM device to check")->capture_default_str();
  cmd->callback([json, kvm_path, &exit_code] {
    host::HostReport report = host::check_host(*kvm_path);
    report.checks.push_back(jail_check());
    if (*json) {
      print_json(report);
    } else {
      print_text(report);
    }
    exit_code = report.can_run_guests ? 0 : kExitCannotRun;
  });
}

}  // namespace husk::cli
