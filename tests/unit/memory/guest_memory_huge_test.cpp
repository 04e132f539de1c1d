// GuestMemory::Backing::kHugeAnonymous: a booted VM's RAM as private
// anonymous memory advised for transparent huge pages. Each region's host
// address agrees with its guest address modulo 2 MiB (else no huge page
// could back it), the mapping is advised `hg` in smaps, it reads back and
// reads zero, and save() refuses it (only a memfd can be saved).
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "runtime/memory/guest_memory.h"
#include "tests/support/temp_dir.h"

using namespace husk;

namespace {

constexpr uint64_t kMiB = 1 << 20;

// The VmFlags line of the smaps entry that starts at `host`.
std::string vm_flags_of(const void* host) {
  std::ifstream smaps("/proc/self/smaps");
  const std::string start = [&] {
    std::ostringstream s;
    s << std::hex << reinterpret_cast<uintptr_t>(host) << "-";
    return s.str();
  }();
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.rfind(start, 0) == 0) in = true;
    if (in && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return {};
}

}  // namespace

TEST_CASE("guest memory: huge anonymous regions are 2 MiB congruent, advised, zero and writable", "[unit]") {
  // The second region starts 1 MiB past a 2 MiB boundary on purpose.
  const std::vector<RegionSpec> regions{{0, 6 * kMiB}, {9 * kMiB, 4 * kMiB}};
  auto mem = GuestMemory::create(regions, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(mem);
  REQUIRE(mem->regions().size() == 2);
  for (const GuestRegion& r : mem->regions()) {
    INFO("region at " << r.gpa());
    CHECK(reinterpret_cast<uintptr_t>(r.host()) % (2 * kMiB) == r.gpa() % (2 * kMiB));
    const std::string flags = vm_flags_of(r.host());
    INFO(flags);
    CHECK(flags.find(" hg") != std::string::npos);  // MADV_HUGEPAGE
    CHECK(flags.find(" dd") != std::string::npos);  // MADV_DONTDUMP
  }
  auto zero = mem->read_obj<uint64_t>(9 * kMiB + 12345);
  REQUIRE(zero);
  CHECK(*zero == 0);
  REQUIRE(mem->write_obj<uint64_t>(12 * kMiB, 0x1122334455667788ull));
  auto back = mem->read_obj<uint64_t>(12 * kMiB);
  REQUIRE(back);
  CHECK(*back == 0x1122334455667788ull);
  // Outside every region, between them and past the end.
  CHECK_FALSE(mem->read_obj<uint64_t>(7 * kMiB));
  CHECK_FALSE(mem->read_obj<uint64_t>(13 * kMiB));

  test::TempDir dir;
  UniqueFd out(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(out);
  auto saved = mem->save(out.get());
  REQUIRE_FALSE(saved);
  CHECK(saved.error().message.find("anonymous") != std::string::npos);
}
