// `husk boot` on the machine's own /dev/kvm with tiny guests made here:
// the run loop, port dispatch, serial output, the i8042 reset, failure exits,
// signals, and the messages for bad input.
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using husk::test::Asm;
using husk::test::make_tiny_elf;
using husk::test::run_process;
using husk::test::TempDir;

namespace {
const std::string kHusk = HUSK_BIN;

std::vector<std::string> boot_args(const std::string& kernel, std::vector<std::string> extra = {}) {
  std::vector<std::string> args{kHusk, "boot", "--kernel", kernel, "--no-input"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}
}  // namespace

TEST_CASE("a tiny guest prints on COM1 and resets through the i8042", "[kvm]") {
  TempDir dir;
  const std::string kernel =
      dir.write("hello.elf", make_tiny_elf(Asm().print("hello from the guest\n").reset().bytes));
  auto r = run_process(boot_args(kernel), 60);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello from the guest\n");
  CHECK(r.err.find("i8042") != std::string::npos);
}

TEST_CASE("every vCPU stops when the boot CPU resets the VM", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("smp.elf", make_tiny_elf(Asm().print("x").reset().bytes));
  for (const char* vcpus : {"2", "4", "32"}) {
    auto r = run_process(boot_args(kernel, {"--vcpus", vcpus}), 60);
    INFO(vcpus << ": " << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "x");
  }
}

TEST_CASE("the boot timeline goes to a JSON file, seccomp enforced", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("t.elf", make_tiny_elf(Asm().print("t").reset().bytes));
  const std::string json = dir.file("timeline.json");
  auto r = run_process(boot_args(kernel, {"--timeline-json", json, "--seccomp=enforce"}), 60);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  std::ifstream in(json);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"exit_reason\": \"guest-reset\"") != std::string::npos);
  CHECK(text.find("\"first_kvm_run_cpu_ms\"") != std::string::npos);
}

TEST_CASE("the console can go to a file", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("k.elf", make_tiny_elf(Asm().print("to file\n").reset().bytes));
  auto r = run_process(boot_args(kernel, {"--console", dir.file("console.log")}), 60);
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  std::ifstream in(dir.file("console.log"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "to file\n");
}

TEST_CASE("a guest that faults with no IDT stops the VM as a failure", "[kvm]") {
  TempDir dir;
  // ud2 with an empty IDT: #UD, then #DF, then a triple fault (or, on a KVM
  // that emulates CPL0 code, an emulation failure). Either way: no hang.
  const std::string kernel = dir.write("ud2.elf", make_tiny_elf(Asm().print("a").raw({0x0f, 0x0b}).bytes));
  auto r = run_process(boot_args(kernel), 60);
  INFO(r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 1);
  CHECK(r.out == "a");
  CHECK(r.err.find("guest failed") != std::string::npos);
  // The fault explains itself: registers, special registers and the exits
  // that led to it (the "a" went out through the UART's port 0x3f8).
  CHECK(r.err.find("vCPU 0 state:") != std::string::npos);
  CHECK(r.err.find("rip 0x") != std::string::npos);
  CHECK(r.err.find("cr0 0x") != std::string::npos);
  CHECK(r.err.find("write 0x3f8 size 1 value 0x61") != std::string::npos);
}

TEST_CASE("SIGTERM and SIGINT to husk stop a spinning guest", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("spin.elf", make_tiny_elf(Asm().print("s").spin().bytes));
  for (int sig : {SIGTERM, SIGINT}) {
    auto r = run_process(boot_args(kernel, {"--vcpus", "2"}), 30, "", 500, sig);
    INFO(r.err);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("signal") != std::string::npos);
  }
}

TEST_CASE("SIGQUIT to husk logs where every vCPU is, and the VM runs on", "[kvm]") {
  // A hung guest can be asked where it is: each vCPU's registers and last
  // exits, then the guest goes on (it still answers the SIGTERM after).
  TempDir dir;
  const std::string kernel = dir.write("spin.elf", make_tiny_elf(Asm().print("q").spin().bytes));
  std::string cmd;
  for (const std::string& a : boot_args(kernel, {"--vcpus", "2"})) cmd += "'" + a + "' ";
  auto r = run_process({"sh", "-c", cmd + "& p=$!; sleep 1; kill -QUIT $p; sleep 1; kill -TERM $p; wait $p"}, 60);
  INFO(r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 1);                 // stopped by the SIGTERM, not the SIGQUIT
  CHECK(r.err.find("husk received TERM") != std::string::npos);
  CHECK(r.err.find("state dump requested") != std::string::npos);
  CHECK(r.err.find("vCPU 0 state:") != std::string::npos);
  CHECK(r.err.find("vCPU 1 state:") != std::string::npos);
  CHECK(r.err.find("write 0x3f8 size 1 value 0x71") != std::string::npos);  // the "q"
}

TEST_CASE("husk boot explains bad input", "[kvm]") {
  TempDir dir;
  SECTION("a missing kernel names the path") {
    auto r = run_process(boot_args(dir.file("nope/vmlinux")), 30);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(dir.file("nope/vmlinux")) != std::string::npos);
    CHECK(r.err.find("No such file") != std::string::npos);
  }
  SECTION("a file that is no kernel says so") {
    const std::string junk = dir.write("junk", std::vector<uint8_t>(8192, 0x41));
    auto r = run_process(boot_args(junk), 30);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("not a vmlinux ELF or a bzImage") != std::string::npos);
  }
  SECTION("a kernel larger than memory says how much is needed") {
    const std::string big = dir.write("big.elf", make_tiny_elf(Asm().reset().bytes, 0x1000000, 64ull << 20));
    auto r = run_process(boot_args(big, {"--memory", "32"}), 30);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("MiB") != std::string::npos);
  }
  SECTION("an initrd that does not fit says so") {
    const std::string kernel = dir.write("k.elf", make_tiny_elf(Asm().reset().bytes));
    const std::string initrd = dir.write("initrd", std::vector<uint8_t>(40u << 20, 0));
    auto r = run_process(boot_args(kernel, {"--memory", "32", "--initrd", initrd}), 30);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("initrd") != std::string::npos);
    CHECK(r.err.find("MiB") != std::string::npos);
  }
  SECTION("a vCPU count out of range gives the range") {
    const std::string kernel = dir.write("k.elf", make_tiny_elf(Asm().reset().bytes));
    for (const char* n : {"0", "33"}) {
      auto r = run_process(boot_args(kernel, {"--vcpus", n}), 30);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("between 1 and 32") != std::string::npos);
    }
  }
  SECTION("too little memory gives the range") {
    const std::string kernel = dir.write("k.elf", make_tiny_elf(Asm().reset().bytes));
    auto r = run_process(boot_args(kernel, {"--memory", "8"}), 30);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("between 32 MiB and") != std::string::npos);
  }
}

TEST_CASE("a stop signal ends husk even when nobody reads its console", "[kvm]") {
  // Once husk hung here: a vCPU sat in write() on the full console pipe and
  // never saw the stop.
  TempDir dir;
  Asm flood;
  flood.print("0123456789abcdef\n");
  const auto back = static_cast<uint8_t>(-static_cast<int>(flood.bytes.size() + 2));
  flood.raw({0xeb, back});  // jmp to the start: print forever
  const std::string kernel = dir.write("flood.elf", make_tiny_elf(flood.bytes));
  std::string cmd;
  for (const std::string& a : boot_args(kernel)) cmd += "'" + a + "' ";
  // The fifo's reader (fd 3) never reads: husk's console blocks once the
  // pipe and husk's own backlog are full (the guest prints about 50 KB/s
  // here, so 4 s fills both).
  auto r = run_process({"sh", "-c", "cd '" + dir.path().string() + "' && mkfifo console && { " + cmd +
                                        "> console & p=$!; exec 3<console; sleep 4; kill -TERM $p; "
                                        "wait $p; echo rc=$?; }"},
                       30);
  INFO(r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.out.find("rc=1") != std::string::npos);
  CHECK(r.err.find("husk received TERM") != std::string::npos);
}

namespace {
// The VmFlags and names of the running `husk boot`'s guest RAM (the
// mappings husk marks MADV_DONTDUMP, "dd"), one "NAME|FLAGS" line each.
std::string guest_ram_mappings(const std::string& kernel, const std::string& huge_pages) {
  const std::string script =
      "'" + kHusk + "' boot --kernel '" + kernel + "' --no-input --memory 64 --huge-pages " + huge_pages +
      " >/dev/null 2>&1 & p=$!; for i in $(seq 100); do sleep 0.05; grep -q '^VmFlags:.* dd' /proc/$p/smaps "
      "2>/dev/null && break; done; awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 } "
      "/^VmFlags:/ && / dd/ { print name \"|\" $0 }' /proc/$p/smaps; kill $p; wait $p";
  const auto r = run_process({"sh", "-c", script}, 30);
  INFO(r.err);
  REQUIRE_FALSE(r.timed_out);
  return r.out;
}
}  // namespace

TEST_CASE("husk boot --huge-pages: guest RAM advised for huge pages by default, a 4 KiB memfd when off", "[kvm]") {
  TempDir dir;
  const std::string kernel = dir.write("spin.elf", make_tiny_elf(Asm().print("s").spin().bytes));
  const std::string on = guest_ram_mappings(kernel, "on");
  INFO("on:\n" << on);
  REQUIRE_FALSE(on.empty());
  CHECK(on.find(" hg") != std::string::npos);  // MADV_HUGEPAGE
  CHECK(on.find("memfd:husk-guest-ram") == std::string::npos);
  const std::string off = guest_ram_mappings(kernel, "off");
  INFO("off:\n" << off);
  REQUIRE_FALSE(off.empty());
  CHECK(off.find(" hg") == std::string::npos);
  CHECK(off.find("memfd:husk-guest-ram") != std::string::npos);
  // A value that is not on or off is a usage error, before any VM.
  const auto bad = run_process(boot_args(kernel, {"--huge-pages", "maybe"}), 30);
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("--huge-pages") != std::string::npos);
}
