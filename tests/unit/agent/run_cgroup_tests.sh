#!/usr/bin/env bash
# Runs the agent's cgroup v2 tests ([.cgroup]) inside the nested test host,
# where a fresh cgroup2 hierarchy can be mounted with every controller.
# Usage: tests/unit/agent/run_cgroup_tests.sh BUILD_DIR
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../../testhost/run" -- sh -c "
  set -e
  root=\$(mktemp -d -p '$build' cgroup.XXXXXX)
  mount -t cgroup2 cgroup2 \"\$root\"
  rc=0
  HUSK_AGENT_CGROUP_ROOT=\"\$root\" '$build/bin/husk-unit-tests' '[.cgroup]' || rc=\$?
  umount \"\$root\"; rmdir \"\$root\"
  exit \$rc"
