// Small system helpers for the guest agent: whole-file reads and writes of
// /proc, /sys and cgroup files, and a monotonic clock.
#pragma once

#include <cstdint>
#include <string>

namespace husk::guest {

// Writes `value` to an existing file (a cgroup or /proc knob). 0 or errno.
int write_text(const std::string& path, const std::string& value);
// Reads a small file (at most 64 KiB). 0 or errno.
int read_text(const std::string& path, std::string& out);
// The value after "key " on its own line in a flat-keyed file such as
// cpu.stat or memory.events; 0 when the key is absent.
uint64_t keyed_value(const std::string& text, const std::string& key);
// mkdir -p; 0 or errno.
int make_dirs(const std::string& path, unsigned mode);
int64_t monotonic_ns();
// Mixes `entropy` into the kernel's pool, credited (RNDADDENTROPY), and
// reseeds its random number generator at once (RNDRESEEDCRNG). Needs
// CAP_SYS_ADMIN. 0 or errno.
int reseed_kernel_rng(const std::string& entropy);

}  // namespace husk::guest
