#pragma once

namespace husk::cli {
inline constexpr const char* kHuskVersion = "0.1.0";
}
