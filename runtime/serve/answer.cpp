#include "runtime/serve/answer.h"

#include <fmt/format.h>

#include "runtime/job/result_json.h"
#include "runtime/serve/http_status.h"

namespace husk::serve {

namespace {
constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kBytes = "application/octet-stream";
constexpr const char* kJson = "application/json";

// The process's run: the last step (serve's jobs have [process] last).
const job::RunResult* process_run(const job::JobResult& result) {
  return result.steps.empty() ? nullptr : &result.steps.back();
}
}  // namespace

bool wants_json(std::string_view result_param, std::string_view accept) {
  return result_param == "json" || accept.find("application/json") != std::string_view::npos;
}

std::string header_value(std::string_view text, size_t max) {
  std::string out;
  for (const char c : text.substr(0, max)) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte >= 0x20 && byte < 0x7f ? c : (c == '\n' || c == '\t' ? ' ' : '?');
  }
  return out;
}

HttpAnswer answer_for(const CallOutcome& outcome, const AnswerContext& context) {
  const job::JobResult& r = outcome.result;
  HttpAnswer a;
  a.status = status_for(r.verdict);
  a.headers.emplace_back("X-Husk-Verdict", job::verdict_code(r.verdict));
  a.headers.emplace_back("X-Husk-Request-Ms", fmt::format("{:.0f}", context.request_ms));
  if (outcome.ran) a.headers.emplace_back("X-Husk-Start", context.start);
  if (const job::RunResult* p = process_run(r); p != nullptr && outcome.ran) {
    if (p->exit_code >= 0) a.headers.emplace_back("X-Husk-Exit-Code", std::to_string(p->exit_code));
    if (p->signal > 0) a.headers.emplace_back("X-Husk-Signal", std::to_string(p->signal));
  }
  if (r.verdict != job::Verdict::kOk && !r.message.empty()) {
    a.headers.emplace_back("X-Husk-Message", header_value(r.message));
  }
  if (context.json) {
    a.content_type = kJson;
    a.body = job::result_json(r, context.husk_version);
    return a;
  }
  if (!outcome.stdout_data.empty() || r.verdict == job::Verdict::kOk) {
    a.content_type = kBytes;
    a.body = outcome.stdout_data;
    return a;
  }
  a.content_type = kText;
  a.body = fmt::format("husk serve: {} ({}): {}\n", job::verdict_code(r.verdict), job::verdict_meaning(r.verdict),
                       r.message.empty() ? "no output" : r.message);
  return a;
}

HttpAnswer busy_answer(size_t in_flight, size_t limit) {
  HttpAnswer a = text_answer(kStatusBusy, fmt::format("husk serve: busy, {} requests in flight (--max-concurrent {})\n",
                                                      in_flight, limit));
  a.headers.emplace_back("Retry-After", "1");
  return a;
}

HttpAnswer text_answer(int status, std::string text) {
  HttpAnswer a;
  a.status = status;
  a.content_type = kText;
  a.body = std::move(text);
  return a;
}

}  // namespace husk::serve
