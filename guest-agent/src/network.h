// The guest's network for ConfigureNetwork (protocol.h): the virtio-net
// interface (address, MTU, link, default route) through the classic
// SIOCS* and SIOCADDRT ioctls on an AF_INET socket, then the resolver files
// (etc_files.h). And the loopback interface, which every guest gets up at
// start, network or not.
//
// Each step that fails names itself and its arguments ("SIOCADDRT default
// via 10.0.2.2 dev eth0"); StepError::message() adds the errno's text. The
// steps are idempotent: configuring again replaces the address, MTU and
// files, and a default route that is already there is kept (EEXIST).
// Not covered: IPv6 (the guest kernel has none), a second interface,
// removing an old default route via another gateway.
#pragma once

#include <string>

#include "guest-agent/protocol/protocol.h"
#include "guest-agent/src/etc_files.h"

namespace husk::guest {

// Where the resolver files go, and where they go instead when /etc is
// read-only (a tmpfs: /run is mounted by PID 1).
inline constexpr const char* kEtcDir = "/etc";
inline constexpr const char* kNetworkFallbackDir = "/run/husk/etc";

// `lo` up with 127.0.0.1/8.
StepError bring_up_loopback();

// The interface whose MAC is m.mac: MTU (unless 0), address and netmask,
// IFF_UP, and the default route via m.gateway (unless 0). ENODEV when no
// interface has that MAC.
StepError configure_interface(const agent::proto::ConfigureNetwork& m);

// configure_interface, then write_resolver_files(kEtcDir, ...). `m` must
// have passed proto::network_config_error.
StepError configure_network(const agent::proto::ConfigureNetwork& m);

}  // namespace husk::guest
