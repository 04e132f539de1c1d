// The jail's filesystem (docs/jail.md, "inside"): the jail folder becomes
// "/" of a private mount namespace, with each Bind mounted at its target
// and nothing else of the host. Private to the jail.
#pragma once

#include "runtime/common/result.h"
#include "runtime/jail/jail.h"

namespace husk::jail {

// Parent side, before the fork, so that mistakes come back to the caller:
// the root is a directory the jail's uid does not own, made traversable
// (0711) but not writable for that uid; every target is a plain absolute
// path; every source exists; the mount points (folders, empty files) are
// made in the root.
[[nodiscard]] Result<void> prepare_root(const JailSpec& spec);

// In the jailed process (its own mount namespace): every mount private,
// the binds mounted (read-only where asked; nosuid, noexec, and nodev but
// for device nodes), pivot_root into the root, the old root detached, "/"
// remounted nosuid, nodev, noexec.
[[nodiscard]] Result<void> enter_root(const JailSpec& spec);

}  // namespace husk::jail
