// The job files in examples/ parse, and the examples shown in
// docs/job-file.md are those files, byte for byte.
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/job/job_parser.h"
#include "tests/unit/job/job_test_support.h"

namespace husk::job {
namespace {

using namespace testing;

// --- examples/ and docs/job-file.md -----------------------------------------

// Options for the examples: the repository's guest when built, else stand-ins.
struct ExampleOptions {
  ExampleOptions() {
    options.default_kernel = stand_ins.write("vmlinux", {});
    options.default_initramfs = stand_ins.write("initramfs.cpio", {});
  }
  test::TempDir stand_ins;
  LoadOptions options;
};

TEST_CASE("examples/hello.toml", "[job][examples]") {
  ExampleOptions e;
  auto job = load_job_file((repo_root() / "examples/hello.toml").string(), e.options);
  if (!job) FAIL(job.error().message);
  REQUIRE(job->steps.size() == 1);
  CHECK(job->steps[0].argv.at(0) == "sh");
  CHECK_THAT(job->steps[0].argv.at(2), Contains("uname -r"));
}

TEST_CASE("examples/function.toml", "[job][examples]") {
  ExampleOptions e;
  e.options.has_request_input = true;
  auto job = load_job_file((repo_root() / "examples/function.toml").string(), e.options);
  if (!job) FAIL(job.error().message);
  REQUIRE(job->steps.size() == 1);
  CHECK(job->steps[0].stdin.kind == Stdin::Kind::kRequest);
  CHECK(job->steps[0].argv == std::vector<std::string>{"sh", "-c", "tr a-z A-Z"});
}

TEST_CASE("examples/judge/judge.toml", "[job][examples]") {
  ExampleOptions e;
  const fs::path dir = repo_root() / "examples/judge";
  auto job = load_job_file((dir / "judge.toml").string(), e.options);
  if (!job) FAIL(job.error().message);
  REQUIRE(job->judge);
  REQUIRE(job->files.size() == 2);
  CHECK(job->files[0].source == (dir / "sum.sh").string());
  REQUIRE(job->cases.size() >= 3);
  bool inline_stdin = false, file_stdin = false, file_expected = false, tokens = false, checker = false;
  for (const Case& c : job->cases) {
    inline_stdin = inline_stdin || c.stdin.kind == Stdin::Kind::kInline;
    file_stdin = file_stdin || c.stdin.kind == Stdin::Kind::kFile;
    tokens = tokens || c.compare == Compare::kTokens;
    checker = checker || c.compare == Compare::kChecker;
    if (c.stdin.kind == Stdin::Kind::kFile) {
      CHECK(c.stdin.value == (dir / "tests/negative.in").string());
      CHECK(c.expected == read(dir / "tests/negative.out"));
      file_expected = true;
    }
  }
  CHECK(inline_stdin);
  CHECK(file_stdin);
  CHECK(file_expected);
  CHECK(tokens);
  CHECK(checker);
  CHECK_FALSE(job->judge->checker.empty());
}

// Copies examples/ci into a temporary tree laid out like the repository,
// with or without build/guest/debian.ext4.
fs::path ci_tree(const test::TempDir& tmp, bool with_image) {
  const fs::path ci = tmp.path() / "examples/ci";
  fs::create_directories(ci);
  fs::copy(repo_root() / "examples/ci", ci, fs::copy_options::recursive);
  if (with_image) {
    fs::create_directories(tmp.path() / "build/guest");
    std::ofstream(tmp.path() / "build/guest/debian.ext4") << "";
  }
  return ci / "ci.toml";
}

TEST_CASE("examples/ci/ci.toml with the Debian root disk", "[job][examples]") {
  ExampleOptions e;
  test::TempDir tmp;
  auto job = load_job_file(ci_tree(tmp, true).string(), e.options);
  if (!job) FAIL(job.error().message);
  REQUIRE(job->vm.root_disk);
  CHECK(job->vm.root_disk->path == (tmp.path() / "build/guest/debian.ext4").string());
  CHECK(job->vm.root_disk->mode == vmm::DiskMode::kCopyOnWrite);
  REQUIRE(job->steps.size() >= 2);
  CHECK(job->steps[0].name == "build");
  CHECK_THAT(job->steps[0].argv.at(2), Contains("cc "));
  REQUIRE(job->outputs);
  CHECK(job->outputs->dir == (tmp.path() / "examples/ci/out").string());
  CHECK(fs::equivalent(job->files.at(0).source, tmp.path() / "examples/ci/src"));
}

TEST_CASE("examples/ci/ci.toml without the Debian root disk names the image", "[job][examples]") {
  ExampleOptions e;
  test::TempDir tmp;
  auto job = load_job_file(ci_tree(tmp, false).string(), e.options);
  REQUIRE_FALSE(job);
  CHECK(line_count(job.error().message) == 1);
  CHECK_THAT(job.error().message, Contains("vm.root_disk: " + (tmp.path() / "build/guest/debian.ext4").string() +
                                           " does not exist"));
}

TEST_CASE("every job file in examples/ is valid", "[job][examples]") {
  ExampleOptions e;
  e.options.has_request_input = false;
  test::TempDir tmp;
  int seen = 0;
  for (const auto& entry : fs::recursive_directory_iterator(repo_root() / "examples")) {
    if (entry.path().extension() != ".toml") continue;
    ++seen;
    std::string path = entry.path().string();
    // ci/ needs build/guest/debian.ext4: check it in a tree that has one.
    if (entry.path().parent_path().filename() == "ci") path = ci_tree(tmp, true).string();
    INFO(path);
    auto job = load_job_file(path, e.options);
    if (!job) FAIL(job.error().message);
  }
  CHECK(seen >= 4);
}

TEST_CASE("every TOML example in docs/job-file.md is the file in examples/ it names", "[job][examples]") {
  const std::string doc = read(repo_root() / "docs/job-file.md");
  REQUIRE_FALSE(doc.empty());
  int blocks = 0;
  for (size_t at = doc.find("```toml\n"); at != std::string::npos; at = doc.find("```toml\n", at)) {
    at += 8;
    const size_t end = doc.find("```\n", at);
    REQUIRE(end != std::string::npos);
    const std::string block = doc.substr(at, end - at);
    // Each block starts "# examples/NAME.toml: ..." and is that file, whole.
    REQUIRE(block.rfind("# examples/", 0) == 0);
    const std::string name = block.substr(2, block.find(':') - 2);
    INFO(name);
    CHECK(block == read(repo_root() / name));
    ++blocks;
    at = end;
  }
  CHECK(blocks >= 4);
}

}  // namespace
}  // namespace husk::job
