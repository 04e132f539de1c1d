// libFuzzer target for OCI bundle configs (runtime/oci/spec.h, plan.h):
// any bytes as config.json through parse_spec, and as runc exec's
// process.json through parse_process. The file comes from whoever calls
// husk-oci (containerd, Podman, a user), so it is untrusted input.
//
// Checked, besides no crash, leak, UB or exception: an error is one
// printable line; a parsed Spec keeps the reader's promises (ociVersion
// 1.x, root.path set, a process has args and an absolute cwd, rlimits
// unique with soft <= hard, limits > 0 when set, no NUL in what reaches the
// agent); then the plan: plan_exec maps args, env and user exactly and gives a console
// size, and plan_container (root.path and every mount source pointed at
// scratch files, so no host path is walked) gives a VM of 1..32 vCPUs and
// 128 MiB to 1 TiB, copies only for binds, and notes and errors that are
// printable lines.
//
// Input: the file's bytes. Build and run: `make fuzz`.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string_view>

#include "runtime/oci/plan.h"
#include "runtime/oci/spec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace husk;
using namespace husk::oci;
namespace fs = std::filesystem;

struct Fixture {
  std::string rootfs;
  std::string file;  // what every mount source becomes: 3 bytes
  Fixture() {
    const fs::path dir = fuzz::scratch().path() / "oci";
    fs::create_directories(dir / "rootfs");
    rootfs = (dir / "rootfs").string();
    file = (dir / "hosts").string();
    std::ofstream(file) << "x\n";
  }
};

const Fixture& fixture() {
  static Fixture* f = new Fixture();
  return *f;
}

void check_line(const std::string& text) {
  FUZZ_CHECK(!text.empty());
  for (const char c : text) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
}

void check_no_nul(const std::vector<std::string>& strings) {
  for (const auto& s : strings) FUZZ_CHECK(s.find('\0') == std::string::npos);
}

void check_process(const Process& p) {
  FUZZ_CHECK(!p.args.empty());
  check_no_nul(p.args);
  check_no_nul(p.env);
  FUZZ_CHECK(!p.cwd.empty() && p.cwd.front() == '/');
  std::set<std::string> types;
  for (const Rlimit& r : p.rlimits) {
    FUZZ_CHECK(r.soft <= r.hard);
    FUZZ_CHECK(r.type.rfind("RLIMIT_", 0) == 0);
    FUZZ_CHECK(types.insert(r.type).second);
  }
  if (p.umask) FUZZ_CHECK(*p.umask <= 0777);

  std::vector<Note> notes;
  auto req = plan_exec(p, notes);
  FUZZ_CHECK(req.has_value());  // a parsed process always maps
  FUZZ_CHECK(req->argv == p.args && req->env == p.env && req->cwd == p.cwd);
  FUZZ_CHECK(req->uid == p.uid && req->gid == p.gid && req->pty == p.terminal);
  FUZZ_CHECK(req->rows != 0 && req->cols != 0);
  for (const Note& n : notes) check_line(n.text);
}

void check_plan(Spec spec) {
  spec.root_path = fixture().rootfs;
  for (Mount& m : spec.mounts) m.source = fixture().file;
  PlanDefaults defaults;
  defaults.host_cpus = 4;
  auto plan = plan_container(spec, defaults);
  if (!plan) {
    check_line(plan.error().message);
    return;
  }
  FUZZ_CHECK(spec.process.has_value());
  FUZZ_CHECK(plan->vcpus >= 1 && plan->vcpus <= 32);
  FUZZ_CHECK(plan->memory_mib >= kMinVmMemoryMib && plan->memory_mib <= kMaxVmMemoryMib);
  FUZZ_CHECK(plan->copies.size() <= spec.mounts.size());
  for (const FileCopy& c : plan->copies) {
    FUZZ_CHECK(c.source == fixture().file && !c.directory && c.bytes == 2);
    FUZZ_CHECK(!c.destination.empty() && c.destination.front() == '/');
  }
  FUZZ_CHECK(plan->hostname.size() <= 64);
  for (const Note& n : plan->notes) check_line(n.text);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  (void)fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = parse_spec(text);
  if (!spec) {
    FUZZ_TRACE("spec: %s\n", spec.error().message.c_str());
    check_line(spec.error().message);
  } else {
    FUZZ_CHECK(spec->oci_version.rfind("1.", 0) == 0);
    FUZZ_CHECK(!spec->root_path.empty());
    if (spec->resources.memory_limit) FUZZ_CHECK(*spec->resources.memory_limit > 0);
    if (spec->resources.cpu_quota) FUZZ_CHECK(*spec->resources.cpu_quota > 0);
    for (const Mount& m : spec->mounts) FUZZ_CHECK(!m.destination.empty());
    if (spec->process) check_process(*spec->process);
    check_plan(*spec);
  }
  auto process = parse_process(text);
  if (!process) {
    check_line(process.error().message);
  } else {
    check_process(*process);
  }
  return 0;
}
