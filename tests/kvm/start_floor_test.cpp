// The floor program of `make bench-start` (tests/bench/start_floor.c) on the
// machine's own /dev/kvm: the start it measures must be a real one, or its
// figure is no floor. A guest of three instructions writes a byte to the
// serial port at its first instruction, so the vCPU the program sets up
// (long mode, its page tables, the kernel copied to its physical address)
// must reach that instruction: KVM_RUN's first exit is that port write.
#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::run_process;
using husk::test::TempDir;

TEST_CASE("the start floor's vCPU runs the kernel it copied, and its steps are stamped in order", "[kvm]") {
  TempDir dir;
  Asm a;
  a.mov_dx(0x3f8).mov_al('F').out_dx_al().reset();
  const std::vector<uint8_t> code = a.bytes;
  const std::string kernel = dir.write("floor.elf", make_tiny_elf(code));
  auto r = run_process({HUSK_START_FLOOR, kernel, "64"}, 30);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json t = nlohmann::json::parse(r.out);
  CHECK(t["exit_reason"].get<int>() == KVM_EXIT_IO);
  CHECK(t["kernel_bytes_copied"].get<uint64_t>() == code.size());
  CHECK(t["kernel_extents"].get<int>() == 1);
  double last = 0;
  for (const char* step : {"main", "memory", "kernel_copied", "boot_structures", "vm", "memory_slot", "vcpu",
                           "supported_cpuid", "first_kvm_run"}) {
    INFO(step);
    const double at = t["cpu_ms"][step].get<double>();
    CHECK(at >= last);
    last = at;
  }
  CHECK(last > 0);
  CHECK(t["wall_ms"].get<double>() > 0);
}

TEST_CASE("the start floor names a kernel it cannot open", "[kvm]") {
  auto r = run_process({HUSK_START_FLOOR, "/nonexistent/vmlinux"}, 30);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("/nonexistent/vmlinux") != std::string::npos);
}
