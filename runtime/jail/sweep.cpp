// sweep_stale (jail.h; docs/jail.md, "the sweep"): the cgroups of jails
// whose husk was killed before it could remove them. Jail folders are
// PrivateDirs, which sweep their own (runtime/common/private_dir.h).
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "runtime/jail/cgroup.h"
#include "runtime/jail/jail.h"

namespace husk::jail {

void sweep_stale() {
  const int removed = cgroup::sweep(::geteuid() != 0);
  if (removed > 0) spdlog::debug("jail sweep: removed {} stale cgroup(s)", removed);
}

}  // namespace husk::jail
