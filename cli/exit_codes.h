// The exit codes of the husk program, one meaning each, so callers can tell
// success, a failed guest, bad input and husk's own failure apart.
#pragma once

namespace husk::cli {

inline constexpr int kExitOk = 0;            // the guest ended cleanly
inline constexpr int kExitGuestFailed = 1;   // panic, triple fault, KVM could not run it
inline constexpr int kExitUsage = 2;         // bad options or input files; VM not started
inline constexpr int kExitInternal = 3;      // husk or the host failed while running

}  // namespace husk::cli
