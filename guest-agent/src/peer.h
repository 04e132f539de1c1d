// Who may talk to the agent: the host, and nobody else. The guest runs
// untrusted code as root; with a vsock loopback transport in its kernel
// (CONFIG_VSOCKETS_LOOPBACK, in husk's guest kernel and in distribution
// kernels) a job could connect to the agent's port itself, as CID 1
// (VMADDR_CID_LOCAL) or as the guest's own CID, and, since the agent serves
// several connections at once, run programs as the agent does (root, in no
// job's cgroup, outside its limits), write any file, or take every
// connection slot so the host's next exec is refused.
// So the agent looks at every peer's address after accept(2) and closes,
// before reading a byte, any whose CID is not VMADDR_CID_HOST (2). The
// guest's kernel fills that address: CID 2 only for a connection that came
// through the virtio device from the host; a loopback peer is CID 1 (or
// the guest's own CID). A job as root cannot change that without owning
// the kernel, and a guest kernel that lies only fools its own agent.
// Header-only so the unit tests can check it (tests/unit/guest_agent/).
#pragma once

#include <linux/vm_sockets.h>
#include <sys/socket.h>

#include <cstdint>

namespace husk::guest {

// Whether an accepted vsock peer may talk to the agent: only the host.
// `len` is what accept(2) wrote; a short or foreign address is refused.
[[nodiscard]] inline bool is_host_peer(const sockaddr_vm& peer, socklen_t len) {
  return len >= static_cast<socklen_t>(sizeof(sockaddr_vm)) && peer.svm_family == AF_VSOCK &&
         peer.svm_cid == VMADDR_CID_HOST;
}

// Refusals are logged sparingly: a job that connects in a loop must not
// flood the console. The first kLoggedRefusals, then one in kRefusalLogEvery.
inline constexpr uint64_t kLoggedRefusals = 8;
inline constexpr uint64_t kRefusalLogEvery = 1000;
[[nodiscard]] inline bool log_refusal(uint64_t refusals_so_far) {
  return refusals_so_far < kLoggedRefusals || refusals_so_far % kRefusalLogEvery == 0;
}

}  // namespace husk::guest
