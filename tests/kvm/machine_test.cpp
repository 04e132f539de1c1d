// The runtime's Machine on the machine's own /dev/kvm with tiny guests:
// MMIO dispatch to a test device, unclaimed accesses, console input through
// the event loop, and the boot timeline.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include <catch2/catch.hpp>

#include "runtime/vmm/vm_builder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::TempDir;
using namespace husk;

namespace {

// An MMIO device that records writes and answers reads with a fixed value.
class RecordingDevice : public devices::BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    std::lock_guard lock(mutex);
    reads.push_back(offset);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0x41 + i);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lock(mutex);
    uint64_t v = 0;
    std::memcpy(&v, data.data(), std::min(data.size(), sizeof(v)));
    writes.emplace_back(offset, v);
  }
  std::mutex mutex;
  std::vector<uint64_t> reads;
  std::vector<std::pair<uint64_t, uint64_t>> writes;
};

struct Pipe {
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  ~Pipe() {
    ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
  int fds[2];
};

}  // namespace

TEST_CASE("MMIO exits reach the device on the MMIO bus", "[kvm]") {
  TempDir dir;
  // mov eax, 0xd0000010; mov dword [rax], 0x12345678; mov bl, [rax];
  // then print bl ('A' from the device) on COM1 and reset.
  Asm code;
  code.raw({0xb8, 0x10, 0x00, 0x00, 0xd0})                    // mov eax, 0xd0000010
      .raw({0xc7, 0x00, 0x78, 0x56, 0x34, 0x12})              // mov dword [rax], 0x12345678
      .raw({0x8a, 0x18})                                      // mov bl, [rax]
      .mov_dx(0x3f8)
      .raw({0x88, 0xd8})                                      // mov al, bl
      .out_dx_al()
      .reset();
  vmm::VmConfig config;
  config.kernel_path = dir.write("mmio.elf", make_tiny_elf(code.bytes));
  config.console_path = dir.file("console");
  auto machine = vmm::build_machine(config);
  REQUIRE(machine);
  auto device = std::make_shared<RecordingDevice>();
  REQUIRE((*machine)->mmio_bus().insert(device, 0xd0000000, 0x1000));
  auto exit = (*machine)->run();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kGuestReset);
  REQUIRE(device->writes.size() == 1);
  CHECK(device->writes[0] == std::make_pair(uint64_t{0x10}, uint64_t{0x12345678}));
  CHECK(device->reads == std::vector<uint64_t>{0x10});
  std::ifstream in(config.console_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "A");
}

TEST_CASE("unclaimed ports are ignored and remembered once", "[kvm]") {
  TempDir dir;
  Asm code;
  code.mov_al(1).out_imm_al(0x80).out_imm_al(0x80).mov_dx(0x2f8).in_al_dx().print("ok").reset();
  vmm::VmConfig config;
  config.kernel_path = dir.write("ports.elf", make_tiny_elf(code.bytes));
  config.console_path = dir.file("console");
  auto machine = vmm::build_machine(config);
  REQUIRE(machine);
  auto exit = (*machine)->run();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kGuestReset);
  CHECK((*machine)->pio_bus().unclaimed_count() == 2);  // 0x80 once, 0x2f8 once
}

TEST_CASE("console input reaches the guest through the event loop", "[kvm]") {
  TempDir dir;
  // Poll LSR until data ready, read RBR, print it back incremented.
  Asm code;
  code.mov_dx(0x3fd)
      .in_al_dx()
      .raw({0xa8, 0x01, 0x74, 0xfb})  // test al, 1; jz back to in
      .mov_dx(0x3f8)
      .in_al_dx()
      .raw({0xfe, 0xc0})  // inc al
      .out_dx_al()
      .reset();
  Pipe input;
  vmm::VmConfig config;
  config.kernel_path = dir.write("echo.elf", make_tiny_elf(code.bytes));
  config.console_path = dir.file("console");
  config.console_input_fd = input.fds[0];
  auto machine = vmm::build_machine(config);
  REQUIRE(machine);
  REQUIRE(::write(input.fds[1], "A", 1) == 1);
  auto exit = (*machine)->run();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kGuestReset);
  std::ifstream in(config.console_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "B");
}

TEST_CASE("the boot timeline records the first KVM_RUN", "[kvm]") {
  TempDir dir;
  vmm::VmConfig config;
  config.kernel_path = dir.write("t.elf", make_tiny_elf(Asm().reset().bytes));
  config.console_path = dir.file("console");
  auto machine = vmm::build_machine(config);
  REQUIRE(machine);
  REQUIRE((*machine)->run());
  const auto t = (*machine)->timeline();
  CHECK(t.build_start_ns > 0);
  CHECK(t.build_end_ns >= t.build_start_ns);
  CHECK(t.first_run_ns >= t.build_end_ns);
  CHECK(t.first_run_cpu_ns > 0);
  CHECK(t.stop_ns >= t.first_run_ns);
}

TEST_CASE("a machine runs only once", "[kvm]") {
  TempDir dir;
  vmm::VmConfig config;
  config.kernel_path = dir.write("t.elf", make_tiny_elf(Asm().reset().bytes));
  config.console_path = dir.file("console");
  auto machine = vmm::build_machine(config);
  REQUIRE(machine);
  REQUIRE((*machine)->run());
  CHECK_FALSE((*machine)->run());
}
