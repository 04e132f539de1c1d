// The HTTP status of a `husk serve` answer, from the job's verdict
// (docs/serve.md has the table): the function's own failures are 500, a
// time limit (the job's, or --request-timeout) is 504, and husk's or the
// VM's failure is 502 (husk is the gateway; the VM is what failed behind
// it). The statuses husk serve gives before any function runs (413, 503,
// ...) are its own constants here too, so the table lives in one place.
#pragma once

#include "runtime/job/job_result.h"

namespace husk::serve {

inline constexpr int kStatusOk = 200;
inline constexpr int kStatusFunctionFailed = 500;  // RE, SG, ML, OL (and WA, which a function cannot get)
inline constexpr int kStatusVmFailed = 502;        // XX: husk or the VM failed, or no VM could start
inline constexpr int kStatusBusy = 503;            // over --max-concurrent
inline constexpr int kStatusTimeout = 504;         // TO: a time limit or --request-timeout
inline constexpr int kStatusBodyTooLarge = 413;    // over --max-body
inline constexpr int kStatusMethodNotAllowed = 405;
inline constexpr int kStatusUnsupportedMedia = 415;  // a multipart/form-data body
inline constexpr int kStatusBadRequest = 400;        // a body that could not be read

[[nodiscard]] int status_for(job::Verdict verdict);

// The reason phrase of the statuses above ("OK", "Gateway Timeout").
[[nodiscard]] const char* reason_phrase(int status);

}  // namespace husk::serve
