// Helpers of the job-file unit tests: a temporary job folder with stand-in
// guest files, and the place ("LINE:COLUMN") a message must point at.
#pragma once

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/job/job_parser.h"
#include "tests/support/temp_dir.h"

namespace husk::job::testing {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The repository's root, from this file's place in it (tests/unit/job/).
inline fs::path repo_root() { return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path(); }

inline std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "LINE:COLUMN" (1-based) of the first `needle` in `text`: where the
// parser must point for the value or key that `needle` starts.
inline std::string position_of(std::string_view text, std::string_view needle) {
  const size_t at = text.find(needle);
  REQUIRE(at != std::string_view::npos);
  const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
  const size_t line_start = text.rfind('\n', at);
  const size_t column = line_start == std::string_view::npos ? at + 1 : at - line_start;
  return std::to_string(line) + ":" + std::to_string(column);
}

inline size_t line_count(const std::string& message) {
  return 1 + static_cast<size_t>(std::count(message.begin(), message.end(), '\n'));
}

// A job folder in a temporary directory, with a stand-in guest kernel and
// initramfs as the defaults (the parser checks they exist, never reads them).
class JobDir {
 public:
  JobDir() {
    options.default_kernel = write("guest/vmlinux", "kernel");
    options.default_initramfs = write("guest/initramfs.cpio", "initramfs");
  }

  // Writes `contents` to `name` under the folder (parents created); returns its path.
  std::string write(const std::string& name, const std::string& contents) const {
    const fs::path p = dir.path() / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << contents;
    return p.string();
  }
  [[nodiscard]] std::string path(const std::string& name) const { return (dir.path() / name).string(); }
  [[nodiscard]] std::string job_path() const { return path("job.toml"); }

  [[nodiscard]] Result<Job> parse(std::string_view text) const { return parse_job(text, job_path(), options); }

  // Parses a job that must be valid.
  [[nodiscard]] Job ok(std::string_view text) const {
    auto job = parse(text);
    INFO(text);
    if (!job) FAIL(job.error().message);
    return std::move(*job);
  }

  // Parses a job that must be refused; returns the message.
  [[nodiscard]] std::string error(std::string_view text) const {
    auto job = parse(text);
    INFO(text);
    REQUIRE_FALSE(job);
    return job.error().message;
  }

  // A refused job whose only problem is `key` at the value starting with
  // `needle`: one line, "…job.toml:LINE:COLUMN: KEY: …fragment…".
  void expect_error(std::string_view text, std::string_view needle, const std::string& key,
                    const std::string& fragment) const {
    const std::string e = error(text);
    INFO(text);
    CHECK(line_count(e) == 1);
    CHECK_THAT(e, Contains("job.toml:" + position_of(text, needle) + ": " + key + ": "));
    CHECK_THAT(e, Contains(fragment));
  }

  test::TempDir dir;
  LoadOptions options;
};

// A job with [process] running `true`; `top` goes before it (top-level keys
// and tables), `rest` after it.
inline std::string with_process(const std::string& top, const std::string& rest = "") {
  return "version = 1\n" + top + "\n[process]\nrun = \"true\"\n" + rest;
}

inline const Step& process_of(const Job& job) {
  REQUIRE_FALSE(job.steps.empty());
  return job.steps.back();
}

// --- the file as a whole ---------------------------------------------------
}  // namespace husk::job::testing
