#include "cli/boot_command.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/exit_codes.h"
#include "cli/sandbox_flags.h"
#include "cli/terminal.h"
#include "cli/vm_options.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/common/unique_fd.h"
#include "runtime/vmm/vm_builder.h"
#include "runtime/vmm/vmm_process.h"

namespace husk::cli {

namespace {

struct BootOptions {
  vmm::VmConfig vm;
  VmFlags flags;
  std::string vsock;
  bool no_input = false;
  std::string timeline_json;  // write the boot timeline here
  SandboxFlags sandbox;
};

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// `fd` was opened before the VM ran, and is written with write(2): the
// control thread's filter allows no open, and stdio's first write to a
// file would fstat it.
void write_timeline(int fd, const vmm::BootTimeline& t, const vmm::VmExit& exit, int64_t end_ns) {
  nlohmann::json j;
  j["exit_reason"] = vmm::exit_reason_name(exit.reason);
  j["detail"] = exit.detail;
  j["build_ms"] = ms(t.build_end_ns - t.build_start_ns);
  j["first_kvm_run_monotonic_ns"] = t.first_run_ns;
  j["first_kvm_run_cpu_ms"] = ms(t.first_run_cpu_ns);
  j["run_ms"] = ms(end_ns - t.first_run_ns);
  // The host side phase by phase: ms since the process started (main()'s
  // first line), and the process's CPU time at each (from exec: its
  // process_start figure is what exec, the dynamic linker and static
  // initialisers cost). Phases this VMM skips are left out.
  const int64_t start = t.at(vmm::BootPhase::kProcessStart).ns;
  nlohmann::json phases = nlohmann::json::object();
  nlohmann::json cpu = nlohmann::json::object();
  for (size_t i = 0; i < vmm::kBootPhaseCount; ++i) {
    const vmm::PhaseStamp& p = t.phases[i];
    if (p.ns == 0) continue;
    const char* name = vmm::boot_phase_name(static_cast<vmm::BootPhase>(i));
    phases[name] = ms(p.ns - start);
    cpu[name] = ms(p.cpu_ns);
  }
  if (t.first_run_ns != 0) {
    phases["first_kvm_run"] = ms(t.first_run_ns - start);
    cpu["first_kvm_run"] = ms(t.first_run_cpu_ns);
  }
  j["process_start_monotonic_ns"] = start;
  j["phases_ms"] = phases;
  j["cpu_ms"] = cpu;
  const std::string text = j.dump(2) + "\n";
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

int run_boot(BootOptions& options) {
  vmm::BootTimeline started;
  started.at(vmm::BootPhase::kProcessStart) = vmm::process_start_stamp();
  started.mark(vmm::BootPhase::kArgsParsed);
  options.vm.console_input_fd = options.no_input ? -1 : STDIN_FILENO;
  if (auto applied = apply_vm_flags(options.flags, options.vm); !applied) {
    fmt::print(stderr, "husk: {}\n", applied.error().message);
    return kExitUsage;
  }
  if (!options.vsock.empty()) {
    auto vsock = vmm::parse_vsock_spec(options.vsock);
    if (!vsock) {
      fmt::print(stderr, "husk: {}\n", vsock.error().message);
      return kExitUsage;
    }
    options.vm.vsock = *vsock;
  }
  if (auto mode = apply_seccomp_flag(options.sandbox); !mode) {
    fmt::print(stderr, "husk: {}\n", mode.error().message);
    return kExitUsage;
  }
  UniqueFd timeline;
  if (!options.timeline_json.empty()) {
    timeline.reset(::open(options.timeline_json.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!timeline) {
      fmt::print(stderr, "husk: cannot write {}: {}\n", options.timeline_json, std::strerror(errno));
      return kExitUsage;
    }
  }
  auto machine = vmm::build_machine(options.vm, started);
  if (!machine) {
    fmt::print(stderr, "husk: {}\n", machine.error().message);
    return kExitUsage;
  }
  // Open, then drop, then run: this thread becomes the VM's control thread
  // under its filter once the VM's other threads run.
  (*machine)->set_control_filter(vmm::confine_control_thread);
  std::unique_ptr<RawTerminal> raw;
  if (!options.no_input && options.vm.console_path.empty()) {
    raw = std::make_unique<RawTerminal>(STDIN_FILENO);
  }
  auto exit = (*machine)->run();
  raw.reset();
  const int64_t end = clock_ns(CLOCK_MONOTONIC);
  if (!exit) {
    fmt::print(stderr, "husk: {}\n", exit.error().message);
    return kExitInternal;
  }
  const vmm::BootTimeline t = (*machine)->timeline();
  if (timeline) write_timeline(timeline.get(), t, *exit, end);
  const double run_s = t.first_run_ns ? static_cast<double>(end - t.first_run_ns) / 1e9 : 0.0;
  if (vmm::is_clean_exit(exit->reason)) {
    fmt::print(stderr, "husk: {} after {:.3f} s\n", exit->detail, run_s);
    return kExitOk;
  }
  fmt::print(stderr, "husk: guest failed ({}): {}\n", vmm::exit_reason_name(exit->reason),
             exit->detail);
  if (!exit->diagnostics.empty()) fmt::print(stderr, "{}", exit->diagnostics);
  return exit->reason == vmm::ExitReason::kVcpuError ? kExitInternal : kExitGuestFailed;
}

}  // namespace

void add_boot_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<BootOptions>();
  CLI::App* cmd = app.add_subcommand("boot", "Boot a kernel and stream its serial console");
  add_vm_flags(*cmd, options->flags, kVmShape | kVmCmdline | kVmDevices);
  cmd->get_option("--kernel")->required();
  cmd->add_option("--console", options->vm.console_path,
                  "write the console to this file instead of stdout");
  cmd->add_option("--vsock", options->vsock,
                  "attach a virtio-vsock device with its host side on this Unix socket: "
                  "PATH[,cid=N] (guest CID 3 by default)");
  cmd->add_flag("--no-input", options->no_input, "do not forward stdin to the guest console");
  cmd->add_option("--timeline-json", options->timeline_json,
                  "write boot timestamps and the exit reason as JSON to this file");
  add_seccomp_flag(*cmd, options->sandbox);
  cmd->callback([options, &exit_code] { exit_code = run_boot(*options); });
}

}  // namespace husk::cli
