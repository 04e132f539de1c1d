// The snapshot state file (runtime/snapshot/snapshot_file.h): written to
// real files and read back, and refused whole when it is not a husk
// snapshot, of another format version, truncated anywhere, corrupt
// anywhere (every byte flipped in turn), longer than its header says or
// too large; check_compatible's messages; build_id().
#include "runtime/snapshot/snapshot_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "runtime/snapshot/snapshot_codec.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/snapshot/snapshot_test_support.h"

using namespace husk;
using namespace husk::snapshot;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

const StateHeaderInfo kInfo{"0123456789abcdef0123456789abcdef01234567", "vcpus=2\nmemory_mib=256\nkernel=/k\n",
                            256ull << 20};

UniqueFd memfd() {
  UniqueFd fd(::memfd_create("husk-snapshot-test", MFD_CLOEXEC));
  REQUIRE(fd);
  return fd;
}

std::vector<uint8_t> contents(int fd) {
  const off_t size = ::lseek(fd, 0, SEEK_END);
  std::vector<uint8_t> out(static_cast<size_t>(size));
  REQUIRE(::pread(fd, out.data(), out.size(), 0) == size);
  return out;
}

// A whole state file of `m` with `info`'s header.
std::vector<uint8_t> state_file(const MachineState& m, const StateHeaderInfo& info = kInfo) {
  auto state = encode_state(m);
  REQUIRE(state);
  UniqueFd fd = memfd();
  REQUIRE(write_state_file(fd.get(), info, *state));
  return contents(fd.get());
}

std::string parse_error(std::span<const uint8_t> bytes) {
  auto f = parse_state_file(bytes);
  REQUIRE_FALSE(f);
  return f.error().message;
}

std::string compat_error(const std::string& there, const std::string& here) {
  StateHeader h;
  h.build_id = "b";
  h.config = there;
  auto ok = check_compatible(h, "b", here);
  REQUIRE_FALSE(ok);
  return ok.error().message;
}

}  // namespace

TEST_CASE("snapshot file: written and read back", "[snapshot]") {
  const MachineState m = test::sample_state();
  const auto state = encode_state(m);
  REQUIRE(state);
  test::TempDir dir;
  const std::string path = dir.file("state");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(fd);
  // A longer file there before: the writer cuts it to the new end.
  REQUIRE(::ftruncate(fd.get(), 1 << 20) == 0);
  REQUIRE(write_state_file(fd.get(), kInfo, *state));
  const size_t header_size = kMinHeaderBytes + kInfo.build_id.size() + kInfo.config.size();
  CHECK(std::filesystem::file_size(path) == header_size + state->size());

  auto f = read_state_file(fd.get());
  REQUIRE(f);
  CHECK(f->header.version == kStateFormatVersion);
  CHECK(f->header.header_size == header_size);
  CHECK(f->header.memory_bytes == kInfo.memory_bytes);
  CHECK(f->header.state_size == state->size());
  CHECK(f->header.build_id == kInfo.build_id);
  CHECK(f->header.config == kInfo.config);
  CHECK(f->header.checksum.size() == 64);
  test::check_same(m, f->state);

  auto h = read_state_header(path);
  REQUIRE(h);
  CHECK(h->config == kInfo.config);
  CHECK(h->checksum == f->header.checksum);
  CHECK(check_compatible(*h, kInfo.build_id, kInfo.config));
}

TEST_CASE("snapshot file: the header's layout", "[snapshot]") {
  const auto bytes = state_file(test::sample_state(1, false));
  REQUIRE(std::string(bytes.begin(), bytes.begin() + 8) == "HUSKSNAP");
  CHECK(bytes[8] == 1);
  CHECK(bytes[12] == kMinHeaderBytes + kInfo.build_id.size() + kInfo.config.size());
  CHECK(bytes[16 + 3] == (256 >> 4));  // 256 MiB
  CHECK(bytes[32] == kInfo.build_id.size());
  CHECK(std::string(bytes.begin() + 36, bytes.begin() + 36 + 40) == kInfo.build_id);
}

TEST_CASE("snapshot file: read from a pipe", "[snapshot]") {
  const auto bytes = state_file(test::sample_state(1, false, 16, 2));
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  UniqueFd r(p[0]), w(p[1]);
  REQUIRE(bytes.size() < 65536);  // the pipe holds it all
  REQUIRE(::write(w.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  w.reset();
  CHECK(read_state_file(r.get()));
}

TEST_CASE("snapshot file: not a husk snapshot", "[snapshot]") {
  auto bytes = state_file(test::sample_state(1, false));
  bytes[3] = 'Z';
  CHECK(parse_error(bytes) == "not a husk snapshot");
  CHECK(parse_error({}) == "not a husk snapshot");
}

TEST_CASE("snapshot file: another format version", "[snapshot]") {
  auto bytes = state_file(test::sample_state(1, false));
  bytes[8] = 2;
  CHECK(parse_error(bytes) == "snapshot format version 2, this husk reads 1");
}

TEST_CASE("snapshot file: truncated at every length", "[snapshot]") {
  const auto bytes = state_file(test::sample_state(1, true, 32, 2));
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto f = parse_state_file(std::span<const uint8_t>(bytes).first(n));
    if (f) FAIL("a prefix of " << n << " of " << bytes.size() << " bytes parsed");
    const std::string& e = f.error().message;
    if (n < 8 ? e != "not a husk snapshot" : e.find("truncated") == std::string::npos) {
      FAIL("a prefix of " << n << " bytes: " << e);
    }
  }
}

TEST_CASE("snapshot file: every flipped byte is refused", "[snapshot]") {
  const auto bytes = state_file(test::sample_state(1, true, 8, 2));
  const size_t header_size = kMinHeaderBytes + kInfo.build_id.size() + kInfo.config.size();
  const size_t checksum_at = header_size - kStateChecksumBytes;
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto bad = bytes;
    bad[i] ^= 0x20;
    auto f = parse_state_file(bad);
    if (f) FAIL("byte " << i << " flipped parsed");
    const std::string& e = f.error().message;
    // In the checksummed header fields and the state, the checksum finds
    // it (a size or length that no longer fits may be seen first).
    const bool fields = i >= 16 && i < checksum_at;
    if ((i >= header_size || (i >= checksum_at && i < header_size)) &&
        e != "the snapshot's state is corrupt (checksum mismatch)") {
      FAIL("byte " << i << ": " << e);
    }
    if (fields && e != "the snapshot's state is corrupt (checksum mismatch)" &&
        e.find("the snapshot's header is malformed") != 0 && e.find("truncated") == std::string::npos &&
        e.find("past its end") == std::string::npos) {
      FAIL("byte " << i << ": " << e);
    }
  }
}

TEST_CASE("snapshot file: bytes past the state", "[snapshot]") {
  auto bytes = state_file(test::sample_state(1, false));
  bytes.push_back(0);
  CHECK(parse_error(bytes) == "the snapshot has 1 bytes past its end");
}

TEST_CASE("snapshot file: a header size out of range", "[snapshot]") {
  auto bytes = state_file(test::sample_state(1, false));
  bytes[12] = 10, bytes[13] = 0;
  CHECK_THAT(parse_error(bytes), StartsWith("the snapshot's header is malformed: it says it is 10 bytes"));
}

TEST_CASE("snapshot file: a state that does not decode, checksum and all", "[snapshot]") {
  auto state = encode_state(test::sample_state(1, false));
  REQUIRE(state);
  state->push_back(7);
  UniqueFd fd = memfd();
  REQUIRE(write_state_file(fd.get(), kInfo, *state));
  CHECK(parse_error(contents(fd.get())) == "the snapshot's state cannot be read: 1 bytes left over after byte " +
                                               std::to_string(state->size() - 1));
}

TEST_CASE("snapshot file: header and state disagree on the memory size", "[snapshot]") {
  StateHeaderInfo info = kInfo;
  info.memory_bytes = 128ull << 20;
  CHECK(parse_error(state_file(test::sample_state(1, false), info)) ==
        "the snapshot's state is for 268435456 bytes of memory, its header says 134217728");
}

TEST_CASE("snapshot file: the writer refuses oversized header fields", "[snapshot]") {
  UniqueFd fd = memfd();
  StateHeaderInfo info = kInfo;
  info.build_id.assign(kMaxBuildIdBytes + 1, 'a');
  CHECK_FALSE(write_state_file(fd.get(), info, {}));
  info = kInfo;
  info.config.assign(kMaxConfigBytes + 1, 'a');
  auto w = write_state_file(fd.get(), info, {});
  REQUIRE_FALSE(w);
  CHECK(w.error().message == "a configuration of 4097 bytes, at most 4096");
  CHECK(::lseek(fd.get(), 0, SEEK_END) == 0);
}

TEST_CASE("snapshot file: the largest header round trips", "[snapshot]") {
  StateHeaderInfo info{std::string(kMaxBuildIdBytes, 'b'), std::string(kMaxConfigBytes, 'c'), 256ull << 20};
  auto f = parse_state_file(state_file(test::sample_state(1, false), info));
  REQUIRE(f);
  CHECK(f->header.header_size == kMaxHeaderBytes);
  CHECK(f->header.config == info.config);
}

TEST_CASE("snapshot file: reading refuses a file past the size cap", "[snapshot]") {
  test::TempDir dir;
  const std::string path = dir.file("big");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(fd);
  REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(kMaxStateFileBytes + 1)) == 0);  // sparse
  auto f = read_state_file(fd.get());
  REQUIRE_FALSE(f);
  CHECK_THAT(f.error().message, Contains("more than the limit of 67108864"));
}

TEST_CASE("snapshot file: the header alone, for a cache check", "[snapshot]") {
  test::TempDir dir;
  auto bytes = state_file(test::sample_state(1, false));
  SECTION("a missing file") {
    auto h = read_state_header(dir.file("none"));
    REQUIRE_FALSE(h);
    CHECK_THAT(h.error().message, StartsWith("open " + dir.file("none") + ": "));
  }
  SECTION("a truncated file") {
    bytes.pop_back();
    auto h = read_state_header(dir.write("cut", bytes));
    REQUIRE_FALSE(h);
    CHECK_THAT(h.error().message,
               Contains("the snapshot is " + std::to_string(bytes.size()) + " bytes, its header says"));
  }
  SECTION("not a snapshot") {
    auto h = read_state_header(dir.write("other", {1, 2, 3}));
    REQUIRE_FALSE(h);
    CHECK(h.error().message == dir.file("other") + ": not a husk snapshot");
  }
}

TEST_CASE("snapshot file: check_compatible says what differs", "[snapshot]") {
  StateHeader h;
  h.build_id = "aaaa";
  h.config = "vcpus=1\nmemory_mib=128\n";
  auto other_build = check_compatible(h, "bbbb", h.config);
  REQUIRE_FALSE(other_build);
  CHECK(other_build.error().message ==
        "the snapshot was made by another husk build (build id aaaa, this is bbbb): make it again");
  CHECK(check_compatible(h, "aaaa", h.config));

  const std::string prefix = "the snapshot was made for another VM configuration: ";
  CHECK(compat_error("vcpus=1\nmemory_mib=128\n", "vcpus=1\nmemory_mib=256\n") ==
        prefix + "memory_mib=128 there, 256 here");
  CHECK(compat_error("vcpus=1\nmemory_mib=128\n", "vcpus=2\nmemory_mib=256\n") == prefix + "vcpus=1 there, 2 here");
  CHECK(compat_error("vcpus=1\nrng=1\n", "vcpus=1\n") == prefix + "rng=1 there, no rng here");
  CHECK(compat_error("vcpus=1\n", "vcpus=1\ndisk0=/d,ro\n") == prefix + "no disk0 there, disk0=/d,ro here");
  CHECK(compat_error("a=1\nb=2\n", "b=2\na=1\n") == prefix + "the same settings, in another order or repeated");
  // A value from a file cannot forge a line of the message.
  CHECK(compat_error("kernel=/a\r\x1b[2J\n", "kernel=/b\n") == prefix + "kernel=/a\\x0d\\x1b[2J there, /b here");
}

TEST_CASE("snapshot file: build_id is this executable's, stable", "[snapshot]") {
  const std::string id = build_id();
  REQUIRE_FALSE(id.empty());
  CHECK(id.size() <= kMaxBuildIdBytes);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(build_id() == id);
  // The linker's note, as binutils reads it (where it has one to read).
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const test::ProcessResult r = test::run_process({"readelf", "-n", self});
  if (r.exit_code == 0 && r.out.find("Build ID: ") != std::string::npos) {
    CHECK_THAT(r.out, Contains("Build ID: " + id + "\n"));
  }
}

// Not a test: writes the committed seeds of the snapshot_state fuzz target
// (tests/fuzz/README.md) into $HUSK_SNAPSHOT_SEEDS:
//   HUSK_SNAPSHOT_SEEDS=tests/fuzz/corpus/snapshot_state build/bin/husk-unit-tests '[.seeds]'
TEST_CASE("snapshot file: fuzz seeds", "[.seeds]") {
  const char* out = std::getenv("HUSK_SNAPSHOT_SEEDS");
  REQUIRE(out != nullptr);
  auto put = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = std::string(out) + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    REQUIRE(fd);
    REQUIRE(::write(fd.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  };
  MachineState small = test::sample_state(1, false, 16, 2);
  put("one_vcpu", state_file(small));
  put("devices", state_file(test::sample_state(2, true, 64, 4)));
  auto state = encode_state(test::sample_state(1, true, 16, 2));
  REQUIRE(state);
  put("state_only", *state);
}
