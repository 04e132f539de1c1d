// The network report (net_filter.h's NetReport) as text on the VMM channel:
// the VMM process sends it when its VM stops, husk reads it into the job's
// result. JSON, because the same fields end up in the result's JSON.
// The VMM runs beside a hostile guest, so decode_report treats the text as
// untrusted: every field's type checked, strings and the refusal list cut
// to bounds.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/common/result.h"
#include "runtime/net/net_filter.h"

namespace husk::net {

// At most `max_bytes` of text: refusals beyond that are left off (the
// least counted first; the report is sorted by count).
[[nodiscard]] std::string encode_report(const NetReport& report, size_t max_bytes);
[[nodiscard]] Result<NetReport> decode_report(std::string_view text);

}  // namespace husk::net
