#include "runtime/snapshot/snapshot_cache.h"

namespace husk::snapshot {

// Work in progress (issue 13): the VMM's save and restore land next; until
// then a snapshot start says so instead of booting.
Result<agent::RestoreSource> ensure_snapshot(const vmm::VmConfig&, const std::string&, const agent::SessionOptions&) {
  return fail("VM snapshots are not available in this build yet");
}

}  // namespace husk::snapshot
