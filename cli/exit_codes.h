// The exit codes of the husk program: one table for every command (the
// README has it too). 0-3 are husk's own; `husk exec` passes its command's
// status through and keeps 125-127 and 128+N for itself, as env(1),
// timeout(1) and the shells do.
#pragma once

namespace husk::cli {

inline constexpr int kExitOk = 0;            // boot: the guest ended cleanly; run: verdict OK; validate: valid
inline constexpr int kExitFailed = 1;        // boot: the guest failed (panic, triple fault); run: any other verdict
inline constexpr int kExitUsage = 2;         // bad options, job file or input files: nothing ran
inline constexpr int kExitInternal = 3;      // husk or the host failed while running
inline constexpr int kExitGuestFailed = kExitFailed;

// husk exec: the command's own status (0-124), or
inline constexpr int kExecHuskFailed = 125;  // husk or the VM failed (no agent, VM failure, bad options)
inline constexpr int kExecCannotRun = 126;   // the command could not be started
inline constexpr int kExecNotFound = 127;    // the command was not found
inline constexpr int kExecSignalBase = 128;  // 128+N: the command was killed by signal N

}  // namespace husk::cli
