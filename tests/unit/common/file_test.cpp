#include "runtime/common/file.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/temp_dir.h"

namespace husk {
namespace {

// A temporary file with the given contents, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char name[] = "/tmp/husk-file-test-XXXXXX";
    const int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size()));
    ::close(fd);
    path_ = name;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_CASE("read_file reads a whole file", "[common][file]") {
  TempFile file("hello kernel");
  auto data = read_file(file.path(), 1024);
  REQUIRE(data);
  CHECK(std::string(data->begin(), data->end()) == "hello kernel");
}

TEST_CASE("read_file reads an empty file", "[common][file]") {
  TempFile file("");
  auto data = read_file(file.path(), 1024);
  REQUIRE(data);
  CHECK(data->empty());
}

TEST_CASE("read_file names the path and the system error", "[common][file]") {
  auto data = read_file("/nonexistent/husk/vmlinux", 1024);
  REQUIRE_FALSE(data);
  CHECK(data.error().message == "open /nonexistent/husk/vmlinux: No such file or directory");
  CHECK(data.error().code == ENOENT);
}

TEST_CASE("read_file refuses a file over the limit", "[common][file]") {
  TempFile file("0123456789");
  auto data = read_file(file.path(), 9);
  REQUIRE_FALSE(data);
  CHECK_THAT(data.error().message, Catch::Matchers::Contains(file.path()) &&
                                       Catch::Matchers::Contains("limit"));
  CHECK(read_file(file.path(), 10));
}

TEST_CASE("read_file refuses a directory", "[common][file]") {
  auto data = read_file("/tmp", 1024);
  REQUIRE_FALSE(data);
  CHECK_THAT(data.error().message, Catch::Matchers::Contains("not a regular file"));
}

}  // namespace
}  // namespace husk

TEST_CASE("read_text_file stops at its size cap: a job that names /dev/zero gets an error", "[unit]") {
  auto r = husk::read_text_file("/dev/zero", 1 << 20);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "cannot read /dev/zero: it is larger than 1048576 bytes");
  auto missing = husk::read_text_file("/nonexistent/x");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.rfind("cannot read /nonexistent/x", 0) == 0);
}

TEST_CASE("read_text_file reads a file of exactly its cap whole, in chunks past 64 KiB, and one byte more is too much",
          "[unit]") {
  husk::test::TempDir dir;
  std::string text(200 * 1024 + 3, 'x');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  const std::string path = dir.write("text", std::vector<uint8_t>(text.begin(), text.end()));
  auto whole = husk::read_text_file(path, text.size());
  REQUIRE(whole);
  CHECK(*whole == text);
  auto roomy = husk::read_text_file(path);
  REQUIRE(roomy);
  CHECK(*roomy == text);
  auto over = husk::read_text_file(path, text.size() - 1);
  REQUIRE_FALSE(over);
  CHECK(over.error().message == "cannot read " + path + ": it is larger than 204802 bytes");
  const std::string tiny = dir.write("tiny", std::vector<uint8_t>{'4', '2', '\n'});
  auto small = husk::read_text_file(tiny, 3);
  REQUIRE(small);
  CHECK(*small == "42\n");
  const std::string empty = dir.write("empty", std::vector<uint8_t>{});
  auto none = husk::read_text_file(empty, 0);
  REQUIRE(none);
  CHECK(none->empty());
}
