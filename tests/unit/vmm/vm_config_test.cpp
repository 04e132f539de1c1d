#include "runtime/vmm/vm_config.h"

#include <catch2/catch.hpp>

#include "runtime/vmm/stop_state.h"
#include "runtime/vmm/vm_builder.h"

using namespace husk::vmm;

TEST_CASE("VM shapes outside the limits are refused with the range", "[unit]") {
  VmConfig c;
  c.kernel_path = "/x";
  CHECK(validate(c));
  c.vcpus = 0;
  REQUIRE_FALSE(validate(c));
  CHECK(validate(c).error().message.find("between 1 and 32, got 0") != std::string::npos);
  c.vcpus = 33;
  CHECK_FALSE(validate(c));
  c.vcpus = 32;
  CHECK(validate(c));
  c.memory_mib = 31;
  REQUIRE_FALSE(validate(c));
  CHECK(validate(c).error().message.find("between 32 MiB") != std::string::npos);
  c.memory_mib = host_memory_limit_mib() + 1;
  CHECK_FALSE(validate(c));
  c.memory_mib = 64;
  c.cmdline.assign(70000, 'a');
  CHECK_FALSE(validate(c));
}

TEST_CASE("RAM above the MMIO gap continues at 4 GiB", "[unit]") {
  auto small = ram_regions(128);
  REQUIRE(small.size() == 1);
  CHECK(small[0].size == (128ull << 20));
  auto big = ram_regions(4096);
  REQUIRE(big.size() == 2);
  CHECK(big[0].gpa == 0);
  CHECK(big[0].size == 0xc0000000);
  CHECK(big[1].gpa == 0x100000000);
  CHECK(big[0].size + big[1].size == (4096ull << 20));
}

TEST_CASE("the first stop request wins", "[unit]") {
  auto stop = StopState::create();
  REQUIRE(stop);
  CHECK_FALSE((*stop)->stopped());
  CHECK((*stop)->request({ExitReason::kGuestReset, "reset", 0}));
  CHECK_FALSE((*stop)->request({ExitReason::kVcpuError, "later", 1}));
  CHECK((*stop)->stopped());
  CHECK((*stop)->exit()->reason == ExitReason::kGuestReset);
  CHECK(std::string(exit_reason_name(ExitReason::kTripleFault)) == "triple-fault");
  CHECK(is_clean_exit(ExitReason::kGuestShutdown));
  CHECK_FALSE(is_clean_exit(ExitReason::kGuestPanic));
}

TEST_CASE("init's arguments stay after the kernel's", "[unit]") {
  using P = std::pair<std::string, std::string>;
  CHECK(split_init_args("console=ttyS0 panic=-1") == P{"console=ttyS0 panic=-1", ""});
  CHECK(split_init_args("a=1 -- -c echo") == P{"a=1", "-- -c echo"});
  CHECK(split_init_args("-- x") == P{"", "-- x"});
  CHECK(split_init_args("a=1 --") == P{"a=1", "--"});
  CHECK(split_init_args("a=--b c") == P{"a=--b c", ""});
}

TEST_CASE("disk specs name a path and a mode", "[unit]") {
  auto d = parse_disk_spec("/x/disk.img");
  REQUIRE(d);
  CHECK(d->path == "/x/disk.img");
  CHECK(d->mode == DiskMode::kCopyOnWrite);
  CHECK(parse_disk_spec("/a,ro")->mode == DiskMode::kReadOnly);
  CHECK(parse_disk_spec("/a,rw")->mode == DiskMode::kPersistent);
  CHECK(parse_disk_spec("/a,cow")->mode == DiskMode::kCopyOnWrite);
  CHECK_FALSE(parse_disk_spec("/a,xx"));
  CHECK_FALSE(parse_disk_spec(",ro"));
}
