// The channel between husk and its VMM process (vmm_process.h): one
// SOCK_SEQPACKET socket pair, so every message arrives whole or not at all.
// The VMM process sends kBuilt or kBuildFailed once, then kExit once when
// the VM has stopped. husk sends kStop (a reason for the VM's stop) or
// kDump. A 4-byte message is a signal husk received and forwards
// (runtime/common/signals.h); a message of text is a seccomp violation
// report (seccomp/violation.h), written by a dying VMM thread.
// Both ends are husk's own code, but the VMM side runs next to a hostile
// guest: husk parses what it receives as untrusted (sizes checked, text
// cut at its length).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "runtime/common/result.h"
#include "runtime/vmm/exit_reason.h"
#include "runtime/vmm/machine.h"

namespace husk::vmm {

// kSnapshot (husk to VMM) asks for a snapshot into the VM's save_to files;
// the VMM answers kSnapshotDone (exit.detail: what was written) or
// kSnapshotFailed (exit.detail: why), and its VM runs on either way.
// kNetReport (VMM to husk, just before kExit): the network's counts and
// refusals (runtime/net/net_report_codec.h) in exit.detail.
enum class ChannelKind : uint32_t {
  kBuilt = 0x48534b01, kBuildFailed, kExit, kStop, kDump, kSnapshot, kSnapshotDone, kSnapshotFailed, kNetReport
};

// The largest message (a VM exit's detail and diagnostics are cut to fit).
inline constexpr size_t kMaxChannelMessage = 60 * 1024;

struct ChannelMessage {
  ChannelKind kind = ChannelKind::kExit;
  VmExit exit;               // kExit, kStop; kBuildFailed's error in exit.detail
  BootTimeline timeline{};   // kBuilt, kExit
};

// A message from the other end: a ChannelMessage, a forwarded signal
// number, or a violation report line.
struct SignalNumber {
  int signo = 0;
};
struct ReportLine {
  std::string text;
};
using Received = std::variant<ChannelMessage, SignalNumber, ReportLine>;

[[nodiscard]] Result<void> send_message(int fd, const ChannelMessage& message);
// Blocks until a message arrives (the fd is blocking) or returns EAGAIN
// (non-blocking fd); std::nullopt at end of stream.
[[nodiscard]] Result<std::optional<Received>> receive_message(int fd);
// Parses one datagram (exposed for the fuzz and unit tests).
[[nodiscard]] Result<Received> decode_message(std::span<const uint8_t> bytes);

}  // namespace husk::vmm
