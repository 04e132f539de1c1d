// The held-back initrd (runtime/vmm/boot_images.h, held_back_ram.h) on the
// machine's own /dev/kvm: a tiny guest reads its initrd at its first
// instruction, while husk is still copying it (64 MiB), and writes into it.
// Every read sees the file's bytes and the write stays: a vCPU that
// touches the initrd's pages before KVM has them waits for the copy, then
// gets the memory. Under `husk boot --seccomp=enforce`, so the loader's
// filter and the vCPU's wait are the real ones. And the copy that fails
// once the guest runs: an initrd that shrank after husk planned it stops
// the VM with its path and reason, and a vCPU that touches its pages
// reads all ones instead of waiting.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/kvm/kvm.h"
#include "runtime/vmm/boot_images.h"
#include "runtime/vmm/held_back_ram.h"
#include "runtime/vmm/stop_state.h"
#include "runtime/vmm/vm_builder.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::run_process;
using husk::test::TempDir;

namespace {

// rsi holds the boot_params' address at the 64-bit entry (boot.rst);
// ramdisk_image is at 0x218, ramdisk_size at 0x21c.
std::vector<uint8_t> initrd_reader() {
  Asm a;
  a.raw({0x8b, 0xbe, 0x18, 0x02, 0x00, 0x00})  // mov edi, [rsi+0x218]: the initrd's address
      .raw({0x8b, 0x9e, 0x1c, 0x02, 0x00, 0x00})  // mov ebx, [rsi+0x21c]: its size
      .mov_dx(0x3f8)
      .raw({0x8a, 0x07})                    // mov al, [rdi]: its first byte
      .out_dx_al()
      .raw({0x8a, 0x44, 0x1f, 0xff})        // mov al, [rdi+rbx-1]: its last byte
      .out_dx_al()
      .raw({0xc6, 0x47, 0x01, 'Z'})         // mov byte [rdi+1], 'Z'
      .raw({0x8a, 0x47, 0x01})              // mov al, [rdi+1]
      .out_dx_al()
      .reset();
  return a.bytes;
}

}  // namespace

TEST_CASE("a guest that reads its initrd at once, while husk still copies it, sees the whole file", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("reader.elf", make_tiny_elf(initrd_reader()));
  constexpr size_t kSize = (64u << 20) + 7;  // not a whole number of pages
  std::vector<uint8_t> bytes(kSize);
  for (size_t i = 0; i < kSize; ++i) bytes[i] = static_cast<uint8_t>('a' + i % 26);
  const std::string initrd = dir.write("initrd", bytes);
  const std::string json = dir.file("timeline.json");
  auto r = run_process({HUSK_BIN, "boot", "--kernel", kernel, "--initrd", initrd, "--memory", "256", "--no-input",
                        "--seccomp=enforce", "--timeline-json", json},
                       120);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == std::string{'a', static_cast<char>('a' + (kSize - 1) % 26), 'Z'});
  std::ifstream in(json);
  const nlohmann::json t = nlohmann::json::parse(in);
  // The copy began when the guest did, and ended before the guest read
  // its first byte (the read waited for it).
  const auto& phases = t["phases_ms"];
  REQUIRE(phases.contains("initrd_loaded"));
  CHECK(phases["initrd_loaded"].get<double>() >= phases["seccomp_installed"].get<double>());
  CHECK(phases["kernel_loaded"].get<double>() <= phases["vcpus_ready"].get<double>());
}

TEST_CASE("a held-back initrd whose copy fails after the guest started stops the VM and reads as all ones",
          "[kvm]") {
  using namespace husk;
  TempDir dir;
  const std::string kernel = dir.write("reader.elf", make_tiny_elf(initrd_reader()));
  const std::string initrd = dir.write("initrd", std::vector<uint8_t>(8u << 20, 'i'));
  auto memory = GuestMemory::create(vmm::ram_regions(256), GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(memory);
  auto images = vmm::BootImages::start(kernel, initrd, *memory, /*hold_initrd=*/true);
  REQUIRE(images);
  const auto held = (*images)->held_back();
  REQUIRE(held);
  // The file shrinks between the plan and the copy: the copy, which
  // begins when the guest does, finds it short.
  REQUIRE(::truncate(initrd.c_str(), 4096) == 0);

  auto kvm = kvm::Kvm::open();
  REQUIRE(kvm);
  auto vm = kvm->create_vm();
  REQUIRE(vm);
  auto stop = vmm::StopState::create();
  REQUIRE(stop);
  (*images)->attach(*vm, 1, **stop);
  vmm::BootTimeline timeline;
  auto placed = (*images)->finish(timeline);
  REQUIRE(placed);  // the kernel is in; the initrd is not yet asked for
  CHECK(placed->initrd_addr == held->gpa);
  CHECK_FALSE((*stop)->stopped());

  (*images)->start_initrd_copy();
  (*images)->copy_initrd_now();
  const auto begin = std::chrono::steady_clock::now();
  CHECK_FALSE((*images)->wait_until_in(std::chrono::seconds(20)));
  CHECK(std::chrono::steady_clock::now() - begin < std::chrono::seconds(10));  // failed, not timed out
  REQUIRE((*stop)->stopped());
  const auto exit = (*stop)->exit();
  REQUIRE(exit);
  CHECK(exit->reason == vmm::ExitReason::kVcpuError);
  INFO(exit->detail);
  CHECK(exit->detail.find("initrd " + initrd) == 0);
  CHECK(exit->detail.size() > initrd.size() + 9);  // and why

  // A vCPU's access to the pages now reads all ones and its write goes
  // nowhere, at once.
  vmm::HeldBackRam ram(**images, *memory, held->gpa);
  std::vector<uint8_t> got(8, 0);
  ram.read(0, got);
  CHECK(got == std::vector<uint8_t>(8, 0xff));
  const std::vector<uint8_t> z(4, 'Z');
  ram.write(16, z);
  std::vector<uint8_t> back(4, 0);
  REQUIRE(memory->read(held->gpa + 16, back));
  CHECK(back != z);
}
