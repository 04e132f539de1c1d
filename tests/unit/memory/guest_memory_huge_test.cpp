// GuestMemory::Backing::kHugeAnonymous: a booted VM's RAM as private
// anonymous memory advised for transparent huge pages. Each region's host
// address agrees with its guest address modulo 2 MiB (else no huge page
// could back it), the mapping is advised `hg` in smaps, it reads back and
// reads zero, load_file maps a real file over it copy-on-write, and save()
// refuses it (only a memfd can be saved).
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

TEST_CASE("guest memory: load_file maps a file over huge anonymous memory copy-on-write", "[unit]") {
  test::TempDir dir;
  const std::string path = dir.file("kernel");
  std::vector<uint8_t> bytes(256 * 1024 + 100);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 13 + i / 4096);
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto mem = GuestMemory::create({{0, 4 * kMiB}}, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(mem);
  REQUIRE(mem->load_file(1 * kMiB, bytes, fd.get(), 0));
  std::vector<uint8_t> got(bytes.size());
  REQUIRE(mem->read(1 * kMiB, got));
  CHECK(got == bytes);
  // The guest's write is its own: the file keeps its byte.
  REQUIRE(mem->write_obj<uint8_t>(1 * kMiB + 5, static_cast<uint8_t>(bytes[5] + 1)));
  uint8_t on_disk = 0;
  REQUIRE(::pread(fd.get(), &on_disk, 1, 5) == 1);
  CHECK(on_disk == bytes[5]);
  auto mine = mem->read_obj<uint8_t>(1 * kMiB + 5);
  REQUIRE(mine);
  CHECK(*mine == static_cast<uint8_t>(bytes[5] + 1));
}
