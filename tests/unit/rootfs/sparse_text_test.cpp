// rootfs/kernel/sparse_text.py, run on a small ELF file made here: whole
// pages of int3 filler (0xcc) in an executable PT_LOAD segment become holes;
// every other byte stays as it was (a page with one byte of code, int3 pages
// of a writable segment or outside every segment), and zero pages become
// holes too. A file that is not a 64-bit ELF is refused.
#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_elf.h"

using namespace husk;

namespace {

constexpr size_t kPage = 4096;
const std::string kScript = std::string(HUSK_SOURCE_DIR) + "/rootfs/kernel/sparse_text.py";

void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void fill_page(std::vector<uint8_t>& image, size_t page, uint8_t value) {
  std::memset(image.data() + page * kPage, value, kPage);
}

// Page 0: the headers. Pages 1-5: an executable segment (code, int3, int3
// but for one byte, int3, zero). Pages 6-7: a writable one (int3, data).
// Page 8 and 100 more bytes: int3 outside every segment.
std::vector<uint8_t> image() {
  std::vector<uint8_t> bytes(9 * kPage + 100, 0xcc);
  fill_page(bytes, 0, 0);
  const Elf64_Ehdr eh = test::elf64_exec_header(0x1000000, 2);
  std::memcpy(bytes.data(), &eh, sizeof(eh));
  const Elf64_Phdr text{PT_LOAD, PF_R | PF_X, 1 * kPage, 0, 0x1000000, 5 * kPage, 5 * kPage, kPage};
  const Elf64_Phdr data{PT_LOAD, PF_R | PF_W, 6 * kPage, 0, 0x1006000, 2 * kPage, 2 * kPage, kPage};
  std::memcpy(bytes.data() + sizeof(eh), &text, sizeof(text));
  std::memcpy(bytes.data() + sizeof(eh) + sizeof(text), &data, sizeof(data));
  for (size_t i = 0; i < kPage; ++i) bytes[1 * kPage + i] = static_cast<uint8_t>(0x90 + i % 7);
  bytes[3 * kPage + 1234] = 0xc3;  // one byte of code among int3
  fill_page(bytes, 5, 0);
  for (size_t i = 0; i < kPage; ++i) bytes[7 * kPage + i] = static_cast<uint8_t>(i % 251 + 1);
  return bytes;
}

// Where the data of `path` starts at or after `offset` (SEEK_DATA); -1 in a
// hole up to the end.
off_t data_from(const std::string& path, off_t offset) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  return ::lseek(fd.get(), offset, SEEK_DATA);
}

}  // namespace

TEST_CASE("sparse_text.py: the int3 pages of executable segments become holes, nothing else changes", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> in = image();
  write_file(dir.file("vmlinux"), in);
  const test::ProcessResult r = test::run_process({"python3", kScript, dir.file("vmlinux"), dir.file("out")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("2 pages of int3 filler zeroed") != std::string::npos);

  std::vector<uint8_t> expected = in;
  fill_page(expected, 2, 0);
  fill_page(expected, 4, 0);
  CHECK(read_file(dir.file("out")) == expected);
  // The file system must report holes for the rest to mean anything.
  const std::string out = dir.file("out");
  REQUIRE(data_from(out, 0) == 0);
  CHECK(data_from(out, 2 * kPage) == static_cast<off_t>(3 * kPage));  // page 2 is a hole
  CHECK(data_from(out, 4 * kPage) == static_cast<off_t>(6 * kPage));  // pages 4 and 5 too
  CHECK(data_from(out, 8 * kPage) == static_cast<off_t>(8 * kPage));  // int3 outside segments stays

  write_file(dir.file("text"), std::vector<uint8_t>(100, 'x'));
  const test::ProcessResult bad = test::run_process({"python3", kScript, dir.file("text"), dir.file("out2")});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("not a little-endian 64-bit ELF file") != std::string::npos);
}
