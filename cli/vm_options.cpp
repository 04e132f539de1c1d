#include "cli/vm_options.h"

#include <fmt/format.h>

#include "cli/job_io.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/job/job_parser.h"
#include "runtime/job/job_runner.h"

namespace husk::cli {

void add_vm_flags(CLI::App& cmd, VmFlags& f, unsigned groups) {
  if (groups & kVmShape) {
    cmd.add_option("--kernel", f.kernel, "guest kernel: vmlinux (ELF) or bzImage");
    cmd.add_option("--initrd", f.initrd, "initramfs");
    // Ranges are checked with the VM (vmm::validate), whose message gives them.
    cmd.add_option("--vcpus", f.vcpus, fmt::format("vCPUs (1-{})", x86_64::kMaxVcpus));
    cmd.add_option("--memory", f.memory_mib, "guest memory in MiB");
    cmd.add_option("--huge-pages", f.huge_pages,
                   "guest RAM in transparent huge pages (default on; off: 4 KiB pages, the smallest host "
                   "footprint for a guest that touches little of its memory)")
        ->type_name("on|off");
  }
  if (groups & kVmCmdline) {
    cmd.add_option("--cmdline", f.cmdline, "kernel command line");
  }
  if (groups & kVmDevices) {
    cmd.add_option("--disk", f.disks,
                   "attach a virtio-blk disk: PATH[,ro|,cow|,rw] (default cow: writes vanish with the VM); "
                   "repeatable, /dev/vda first")
        ->allow_extra_args(false);
    cmd.add_flag("--rng", f.rng, "attach a virtio-rng entropy device");
  }
  if (groups & kVmStart) {
    auto* warm = cmd.add_flag_callback("--warm", [&f] { f.start = job::StartMode::kSnapshot; },
                                       "start the VM from its snapshot (made on first use; [vm] start = \"snapshot\")");
    cmd.add_flag_callback("--cold", [&f] { f.start = job::StartMode::kBoot; },
                          "boot the VM even if the job says start = \"snapshot\"")
        ->excludes(warm);
    cmd.add_option("--snapshot-cache", f.snapshot_cache,
                   "where snapshots are kept (default $HUSK_SNAPSHOT_CACHE, else ~/.cache/husk/snapshots)");
    cmd.add_option_function<std::string>(
           "--snapshot",
           [&f](const std::string& dir) {
             f.snapshot_dir = dir;
             f.start = job::StartMode::kSnapshot;
           },
           "restore this snapshot folder (from `husk snapshot create --out`); implies --warm")
        ->excludes("--cold");
  }
}

namespace {
Result<std::vector<vmm::DiskConfig>> parse_disks(const std::vector<std::string>& specs) {
  std::vector<vmm::DiskConfig> out;
  for (const std::string& spec : specs) {
    HUSK_TRY_ASSIGN(vmm::DiskConfig disk, vmm::parse_disk_spec(spec));
    out.push_back(std::move(disk));
  }
  return out;
}
}  // namespace

Result<void> apply_vm_flags(const VmFlags& f, vmm::VmConfig& config) {
  if (f.kernel) config.kernel_path = *f.kernel;
  if (f.initrd) config.initrd_path = *f.initrd;
  if (f.cmdline) config.cmdline = *f.cmdline;
  if (f.vcpus) config.vcpus = *f.vcpus;
  if (f.memory_mib) config.memory_mib = *f.memory_mib;
  if (f.huge_pages) config.huge_pages = *f.huge_pages;
  HUSK_TRY_ASSIGN(std::vector<vmm::DiskConfig> disks, parse_disks(f.disks));
  config.disks.insert(config.disks.end(), disks.begin(), disks.end());
  config.rng = config.rng || f.rng;
  return {};
}

Result<void> apply_vm_flags(const VmFlags& f, job::VmSpec& vm) {
  if (f.kernel) vm.kernel = *f.kernel;
  if (f.initrd) {
    vm.initramfs = *f.initrd;
    vm.stock_initramfs = false;
  }
  if (f.cmdline) vm.cmdline = *f.cmdline;
  if (f.vcpus) vm.vcpus = *f.vcpus;
  if (f.memory_mib) vm.memory_mib = *f.memory_mib;
  if (f.huge_pages) vm.huge_pages = *f.huge_pages;
  HUSK_TRY_ASSIGN(std::vector<vmm::DiskConfig> disks, parse_disks(f.disks));
  vm.disks.insert(vm.disks.end(), disks.begin(), disks.end());
  if (f.start) vm.start = *f.start;
  return {};
}

Result<job::Job> load_job_with_flags(const std::string& file, const VmFlags& flags, bool has_request_input) {
  job::LoadOptions load = load_options(has_request_input);
  if (flags.kernel) load.default_kernel = *flags.kernel;
  if (flags.initrd) load.default_initramfs = *flags.initrd;
  HUSK_TRY_ASSIGN(job::Job job, job::load_job_file(file, load));
  auto checked = apply_vm_flags(flags, job.vm).and_then([&job] { return vmm::validate(job::vm_config_for(job.vm)); });
  if (!checked) return fail("husk: " + checked.error().message);
  return job;
}

}  // namespace husk::cli
