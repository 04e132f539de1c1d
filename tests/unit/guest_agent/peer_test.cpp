// The agent answers only the host (guest-agent/src/peer.h): the check it
// makes on every accepted vsock peer, and how often it logs a refusal.
#include "guest-agent/src/peer.h"

#include <catch2/catch.hpp>

namespace husk::guest {
namespace {

sockaddr_vm peer(unsigned cid, unsigned port = 1234) {
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = cid;
  a.svm_port = port;
  return a;
}

constexpr auto kLen = static_cast<socklen_t>(sizeof(sockaddr_vm));

TEST_CASE("agent peer check: only the host's CID may talk to the agent", "[unit][guest_agent]") {
  CHECK(is_host_peer(peer(VMADDR_CID_HOST), kLen));
  CHECK(is_host_peer(peer(2, 0xffffffffu), kLen));  // any host port
  // Loopback peers: VMADDR_CID_LOCAL, and the guest's own CID (3 by husk's
  // default, any other a VM may be given).
  CHECK_FALSE(is_host_peer(peer(VMADDR_CID_LOCAL), kLen));
  CHECK_FALSE(is_host_peer(peer(3), kLen));
  CHECK_FALSE(is_host_peer(peer(1000), kLen));
  // The hypervisor's CID and the wildcard are no peers either.
  CHECK_FALSE(is_host_peer(peer(VMADDR_CID_HYPERVISOR), kLen));
  CHECK_FALSE(is_host_peer(peer(VMADDR_CID_ANY), kLen));
}

TEST_CASE("agent peer check: a foreign or short address is refused", "[unit][guest_agent]") {
  sockaddr_vm unix_peer = peer(VMADDR_CID_HOST);
  unix_peer.svm_family = AF_UNIX;
  CHECK_FALSE(is_host_peer(unix_peer, kLen));
  CHECK_FALSE(is_host_peer(peer(VMADDR_CID_HOST), 0));
  CHECK_FALSE(is_host_peer(peer(VMADDR_CID_HOST), kLen - 1));
}

TEST_CASE("agent peer check: refusals are logged sparingly", "[unit][guest_agent]") {
  int logged = 0;
  for (uint64_t n = 0; n < 10'000; ++n) logged += log_refusal(n) ? 1 : 0;
  // The first kLoggedRefusals, then one in kRefusalLogEvery (1000, ..., 9000).
  CHECK(logged == static_cast<int>(kLoggedRefusals) + 9);
  CHECK(log_refusal(0));
  CHECK_FALSE(log_refusal(kLoggedRefusals));
}

}  // namespace
}  // namespace husk::guest
