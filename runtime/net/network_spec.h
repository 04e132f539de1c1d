// NetworkSpec: a job's [network] table as plain data (docs/job-file.md),
// filled by the job parser, read by VmNetwork (vm_network.h). Closed by
// default: mode kNone means no network device at all, only loopback.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/net/egress_policy.h"

namespace husk::net {

// Where the guest's frames go once the filter lets them through.
enum class BackendKind {
  kPasst,  // user-mode networking: passt (no privileges; outbound connections become the host's own)
  kTap,    // a tap device on the host (root); the guest reaches the host, beyond it the host's routing
};

// Per VM and direction; 0 means no limit.
struct RateLimits {
  uint64_t bytes_per_second = 0;
  uint64_t frames_per_second = 0;
};

struct NetworkSpec {
  NetMode mode = NetMode::kNone;
  BackendKind backend = BackendKind::kPasst;
  std::vector<AllowRule> allow;    // kEgress: what the guest may reach
  std::vector<Publish> publish;    // inbound ports; none by default
  RateLimits rate{};
  uint64_t max_bytes = 0;          // in + out per job; 0 = no cap
  // Upstream resolvers (IPv4): passt forwards the guest's queries to the
  // first; a tap's guest asks them itself. Empty: the host's resolv.conf.
  std::vector<std::string> dns;
};

// "none", "egress", "open"; "passt", "tap".
[[nodiscard]] const char* mode_name(NetMode mode);
[[nodiscard]] const char* backend_name(BackendKind backend);

}  // namespace husk::net
