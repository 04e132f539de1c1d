// The first lines of husk's and husk-serve's main.
#pragma once

namespace husk::cli {

// Stamps the boot timeline's start (runtime/vmm/machine.h), before any work
// of the program's own, then sends logs to stderr, so that stdout stays the
// guest's console, at HUSK_LOG's level (e.g. HUSK_LOG=debug; default warn).
void start_program();

}  // namespace husk::cli
