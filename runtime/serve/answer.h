// The HTTP answer of `husk serve` to one request, as plain data (the HTTP
// library only sends it): the status from the verdict (http_status.h), the
// function's stdout as the body or, on request, the whole JSON result
// (docs/result.schema.json), and the X-Husk-* headers. docs/serve.md
// describes each.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/serve/function_call.h"

namespace husk::serve {

struct HttpAnswer {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

struct AnswerContext {
  bool json = false;          // ?result=json or Accept: application/json
  std::string start;          // "snapshot" or "boot" (X-Husk-Start)
  double request_ms = 0;      // from the request's arrival (X-Husk-Request-Ms)
  std::string husk_version;   // for the JSON result
};

// The JSON result was asked for: a `result=json` query parameter, or an
// Accept header that names application/json.
[[nodiscard]] bool wants_json(std::string_view result_param, std::string_view accept);

// The answer to a request that reached the function (or found no VM).
// The body is the function's stdout; when that is empty and the verdict is
// not OK, a line from husk serve says why instead.
[[nodiscard]] HttpAnswer answer_for(const CallOutcome& outcome, const AnswerContext& context);

// 503 with Retry-After: over --max-concurrent.
[[nodiscard]] HttpAnswer busy_answer(size_t in_flight, size_t limit);

// A plain-text answer from husk serve itself (413, 405, ...).
[[nodiscard]] HttpAnswer text_answer(int status, std::string text);

// Text safe as one HTTP header value: printable ASCII, at most `max` bytes.
[[nodiscard]] std::string header_value(std::string_view text, size_t max = 300);

}  // namespace husk::serve
