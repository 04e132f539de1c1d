// How a case's output is compared with the expected one (checker programs
// run in the guest and are the runner's business).
#pragma once

#include <string>
#include <string_view>

#include "runtime/job/job.h"

namespace husk::job {

// kExact: byte for byte. kTrailingWhitespace: line by line, ignoring
// whitespace at line ends and empty lines at the end. kTokens: the same
// sequence of whitespace-separated tokens.
[[nodiscard]] bool outputs_match(Compare mode, std::string_view expected, std::string_view actual);

// Where `actual` first departs from `expected` under `mode`, for a WA
// message: "line 3: expected \"7\", got \"8\"" or "token 5: ...".
[[nodiscard]] std::string first_difference(Compare mode, std::string_view expected, std::string_view actual);

[[nodiscard]] const char* compare_name(Compare mode);

}  // namespace husk::job
