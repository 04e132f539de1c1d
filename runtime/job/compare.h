// How a case's output is compared with the expected one (checker programs
// run in the guest and are the runner's business).
#pragma once

#include <string_view>

#include "runtime/job/job.h"

namespace husk::job {

// kExact: byte for byte. kTrailingWhitespace: line by line, ignoring
// whitespace at line ends and empty lines at the end. kTokens: the same
// sequence of whitespace-separated tokens.
[[nodiscard]] bool outputs_match(Compare mode, std::string_view expected, std::string_view actual);

[[nodiscard]] const char* compare_name(Compare mode);

}  // namespace husk::job
