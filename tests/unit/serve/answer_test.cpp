// Tests for runtime/serve/http_status.h and answer.h: the verdict -> status
// table of docs/serve.md, the body (stdout, or why not), JSON on request,
// the X-Husk-* headers, and the 503 text.
#include "runtime/serve/answer.h"

#include <map>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "runtime/serve/http_status.h"

namespace husk::serve {
namespace {

using Catch::Matchers::Contains;
using job::Verdict;

std::map<std::string, std::string> headers_of(const HttpAnswer& a) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : a.headers) out[k] = v;
  return out;
}

CallOutcome ran(Verdict verdict, std::string stdout_data, int exit_code = 0) {
  CallOutcome o;
  o.ran = true;
  o.result.job = "fn.toml";
  o.result.verdict = verdict;
  if (verdict != Verdict::kOk) o.result.message = "step 'process': it went wrong";
  job::RunResult process;
  process.name = "process";
  process.kind = job::RunKind::kProcess;
  process.verdict = verdict;
  process.exit_code = exit_code;
  process.stdout_head = stdout_data;
  o.result.steps.push_back(process);
  o.stdout_data = std::move(stdout_data);
  return o;
}

TEST_CASE("each verdict has its status: 200, 500 for the function's failures, 504, 502", "[unit][serve]") {
  CHECK(status_for(Verdict::kOk) == 200);
  CHECK(status_for(Verdict::kRuntimeError) == 500);
  CHECK(status_for(Verdict::kSignaled) == 500);
  CHECK(status_for(Verdict::kMemoryLimit) == 500);
  CHECK(status_for(Verdict::kOutputLimit) == 500);
  CHECK(status_for(Verdict::kWrongAnswer) == 500);
  CHECK(status_for(Verdict::kTimeout) == 504);
  CHECK(status_for(Verdict::kInternal) == 502);
  for (int status : {200, 400, 405, 413, 415, 500, 502, 503, 504}) {
    INFO(status);
    CHECK(std::string(reason_phrase(status)).size() > 1);
  }
}

TEST_CASE("an OK answer is the function's stdout, with the verdict and the time in headers", "[unit][serve]") {
  const HttpAnswer a = answer_for(ran(Verdict::kOk, "HELLO\n"), AnswerContext{false, "boot", 1234.4, "0.1.0"});
  CHECK(a.status == 200);
  CHECK(a.body == "HELLO\n");
  CHECK(a.content_type == "application/octet-stream");
  const auto h = headers_of(a);
  CHECK(h.at("X-Husk-Verdict") == "OK");
  CHECK(h.at("X-Husk-Request-Ms") == "1234");
  CHECK(h.at("X-Husk-Start") == "boot");
  CHECK(h.at("X-Husk-Exit-Code") == "0");
  CHECK(h.count("X-Husk-Message") == 0);
}

TEST_CASE("a failed function's answer keeps its stdout; with none, husk says why", "[unit][serve]") {
  const HttpAnswer printed =
      answer_for(ran(Verdict::kRuntimeError, "partial\n", 3), AnswerContext{false, "snapshot", 0, ""});
  CHECK(printed.status == 500);
  CHECK(printed.body == "partial\n");
  CHECK(headers_of(printed).at("X-Husk-Exit-Code") == "3");
  CHECK(headers_of(printed).at("X-Husk-Verdict") == "RE");
  CHECK(headers_of(printed).at("X-Husk-Message") == "step 'process': it went wrong");

  const HttpAnswer silent = answer_for(ran(Verdict::kRuntimeError, "", 3), AnswerContext{});
  CHECK(silent.content_type == "text/plain; charset=utf-8");
  CHECK_THAT(silent.body, Contains("husk serve: RE (runtime error (non-zero exit)): step 'process': it went wrong"));
}

TEST_CASE("no VM for the request: 504 or 502, a text body, no start header", "[unit][serve]") {
  job::Job job;
  job.source = "fn.toml";
  const HttpAnswer late =
      answer_for(no_vm_outcome(job, Verdict::kTimeout, "no VM was ready within --request-timeout (2 s)"),
                 AnswerContext{false, "boot", 2001, ""});
  CHECK(late.status == 504);
  CHECK_THAT(late.body, Contains("no VM was ready within --request-timeout"));
  CHECK(headers_of(late).count("X-Husk-Start") == 0);
  CHECK(headers_of(late).at("X-Husk-Verdict") == "TO");

  const HttpAnswer broken = answer_for(no_vm_outcome(job, Verdict::kInternal, "no VM: the kernel\nis missing"),
                                       AnswerContext{false, "boot", 0, ""});
  CHECK(broken.status == 502);
  CHECK(headers_of(broken).at("X-Husk-Message") == "no VM: the kernel is missing");
}

TEST_CASE("the JSON result replaces the body when asked for, with the same status", "[unit][serve]") {
  CHECK(wants_json("json", ""));
  CHECK(wants_json("", "application/json"));
  CHECK(wants_json("", "text/html, application/json;q=0.9"));
  CHECK_FALSE(wants_json("", "*/*"));
  CHECK_FALSE(wants_json("text", ""));

  const HttpAnswer a = answer_for(ran(Verdict::kRuntimeError, "out\n", 1), AnswerContext{true, "boot", 10, "9.9"});
  CHECK(a.status == 500);
  CHECK(a.content_type == "application/json");
  const auto j = nlohmann::json::parse(a.body);
  CHECK(j.at("verdict") == "RE");
  CHECK(j.at("husk_version") == "9.9");
  CHECK(j.at("steps").at(0).at("stdout") == "out\n");
}

TEST_CASE("the busy answer is 503 with Retry-After and says how many run", "[unit][serve]") {
  const HttpAnswer a = busy_answer(4, 4);
  CHECK(a.status == 503);
  CHECK(headers_of(a).at("Retry-After") == "1");
  CHECK(a.body == "husk serve: busy, 4 requests in flight (--max-concurrent 4)\n");
}

TEST_CASE("header values are printable ASCII and bounded", "[unit][serve]") {
  CHECK(header_value("a\nb\tc\r\x01\xff") == "a b c???");
  CHECK(header_value(std::string(1000, 'x')).size() == 300);
}

}  // namespace
}  // namespace husk::serve
