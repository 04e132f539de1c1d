// Tests for runtime/serve/function_job.h: which job files husk serve runs
// (examples/function.toml does), what it refuses and why, and what it sets.
#include "runtime/serve/function_job.h"

#include <string>

#include <catch2/catch.hpp>

#include "tests/unit/job/job_test_support.h"

namespace husk::serve {
namespace {

using Catch::Matchers::Contains;
using job::testing::JobDir;

// As husk serve loads it: a plain job (prepare_function_job gives the
// process the request).
Result<job::Job> load_as_function(JobDir& dir, const std::string& text) {
  return job::parse_job(text, dir.path("fn.toml"), dir.options);
}

TEST_CASE("the function example is a function: snapshot start, stdout capped", "[unit][serve]") {
  JobDir dir;
  auto job = job::load_job_file((job::testing::repo_root() / "examples/function.toml").string(), dir.options);
  REQUIRE(job);
  REQUIRE(prepare_function_job(*job, job::StartMode::kSnapshot));
  CHECK(job->vm.start == job::StartMode::kSnapshot);
  CHECK(job->steps.back().stdin.kind == job::Stdin::Kind::kRequest);
  CHECK(job->steps.back().limits.stdout_max == 1ull << 20);  // the job's own cap stays
}

TEST_CASE("steps before the process are fine; each run's stdout gets the default cap", "[unit][serve]") {
  JobDir dir;
  auto job = load_as_function(dir, R"(version = 1
[vm]
start = "snapshot"
[[steps]]
name = "setup"
run = "true"
[process]
run = "cat"
)");
  REQUIRE(job);
  REQUIRE(prepare_function_job(*job, job::StartMode::kBoot));
  CHECK(job->vm.start == job::StartMode::kBoot);  // --start boot wins over the job
  REQUIRE(job->steps.size() == 2);
  CHECK(job->steps[0].limits.stdout_max == kDefaultResponseMax);
  CHECK(job->steps[1].limits.stdout_max == kDefaultResponseMax);
}

TEST_CASE("a job loaded plainly gets the request as stdin; cases, outputs and a stdin of its own are refused",
          "[unit][serve]") {
  JobDir dir;
  auto with_outputs = load_as_function(dir, R"(version = 1
[process]
run = "cat"
[outputs]
paths = ["/tmp/x"]
dir = "out"
)");
  REQUIRE(with_outputs);
  auto refused = prepare_function_job(*with_outputs, job::StartMode::kBoot);
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Contains("does not collect [outputs]"));

  auto plain = job::parse_job("version = 1\n[process]\nrun = \"cat\"\n", dir.path("fn.toml"), dir.options);
  REQUIRE(plain);
  REQUIRE(prepare_function_job(*plain, job::StartMode::kBoot));
  CHECK(plain->steps.back().stdin.kind == job::Stdin::Kind::kRequest);

  auto own_stdin =
      job::parse_job("version = 1\n[process]\nrun = \"cat\"\nstdin = \"x\"\n", dir.path("fn.toml"), dir.options);
  REQUIRE(own_stdin);
  auto refused_stdin = prepare_function_job(*own_stdin, job::StartMode::kBoot);
  REQUIRE_FALSE(refused_stdin);
  CHECK_THAT(refused_stdin.error().message, Contains("remove its stdin/stdin_file"));

  auto judge = job::parse_job("version = 1\n[process]\nrun = \"cat\"\n[[cases]]\nname = \"a\"\nstdin = \"1\"\n",
                              dir.path("fn.toml"), dir.options);
  REQUIRE(judge);
  auto refused_judge = prepare_function_job(*judge, job::StartMode::kBoot);
  REQUIRE_FALSE(refused_judge);
  CHECK_THAT(refused_judge.error().message, Contains("not [[cases]]"));

  auto steps_only = job::parse_job("version = 1\n[[steps]]\nname = \"a\"\nrun = \"true\"\n", dir.path("fn.toml"),
                                   dir.options);
  REQUIRE(steps_only);
  auto no_process = prepare_function_job(*steps_only, job::StartMode::kBoot);
  REQUIRE_FALSE(no_process);
  CHECK_THAT(no_process.error().message, Contains("needs [process]"));
}

}  // namespace
}  // namespace husk::serve
