#include "runtime/vmm/vmm_channel.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace husk::vmm {

namespace {

// The fixed part of a ChannelMessage on the wire; detail and diagnostics
// follow, their sizes here.
struct WireHeader {
  uint32_t kind;
  int32_t reason;
  int32_t vcpu;
  uint32_t detail_size;
  uint32_t diagnostics_size;
  int64_t build_start_ns;
  int64_t build_end_ns;
  int64_t first_run_ns;
  int64_t first_run_cpu_ns;
  int64_t stop_ns;
  // BootTimeline::phases: each phase's monotonic ns, then its CPU ns.
  int64_t phases[kBootPhaseCount][2];
};

bool known_kind(uint32_t kind) {
  return kind >= static_cast<uint32_t>(ChannelKind::kBuilt) && kind <= static_cast<uint32_t>(ChannelKind::kNetReport);
}

}  // namespace

Result<void> send_message(int fd, const ChannelMessage& m) {
  const size_t room = kMaxChannelMessage - sizeof(WireHeader);
  const std::string detail = m.exit.detail.substr(0, room / 2);
  const std::string diagnostics = m.exit.diagnostics.substr(0, room - detail.size());
  WireHeader h{static_cast<uint32_t>(m.kind),
               static_cast<int32_t>(m.exit.reason),
               m.exit.vcpu,
               static_cast<uint32_t>(detail.size()),
               static_cast<uint32_t>(diagnostics.size()),
               m.timeline.build_start_ns,
               m.timeline.build_end_ns,
               m.timeline.first_run_ns,
               m.timeline.first_run_cpu_ns,
               m.timeline.stop_ns,
               {}};
  for (size_t i = 0; i < kBootPhaseCount; ++i) {
    h.phases[i][0] = m.timeline.phases[i].ns;
    h.phases[i][1] = m.timeline.phases[i].cpu_ns;
  }
  std::vector<uint8_t> wire(sizeof(h) + detail.size() + diagnostics.size());
  std::memcpy(wire.data(), &h, sizeof(h));
  std::memcpy(wire.data() + sizeof(h), detail.data(), detail.size());
  std::memcpy(wire.data() + sizeof(h) + detail.size(), diagnostics.data(), diagnostics.size());
  for (;;) {
    const ssize_t n = ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(wire.size())) return {};
    if (n < 0 && errno == EINTR) continue;
    return fail_errno("the VMM channel: send");
  }
}

Result<Received> decode_message(std::span<const uint8_t> bytes) {
  if (bytes.size() == sizeof(int32_t)) {
    int32_t signo = 0;
    std::memcpy(&signo, bytes.data(), sizeof(signo));
    if (signo <= 0 || signo >= 65) return fail("the VMM channel: a signal number out of range");
    return SignalNumber{signo};
  }
  WireHeader h{};
  if (bytes.size() >= sizeof(h)) std::memcpy(&h, bytes.data(), sizeof(h));
  if (bytes.size() < sizeof(h) || !known_kind(h.kind)) {
    // Not a message: a violation report line (printable text, one line).
    std::string text(bytes.begin(), bytes.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
    std::replace_if(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }, ' ');
    return ReportLine{std::move(text)};
  }
  // The sizes are the sender's word: checked against what arrived.
  if (uint64_t{h.detail_size} + h.diagnostics_size != bytes.size() - sizeof(h)) {
    return fail("the VMM channel: a message whose sizes do not add up");
  }
  if (h.reason < 0 || h.reason > static_cast<int32_t>(ExitReason::kSeccompViolation)) {
    return fail("the VMM channel: an unknown exit reason");
  }
  ChannelMessage m;
  m.kind = static_cast<ChannelKind>(h.kind);
  const char* text = reinterpret_cast<const char*>(bytes.data() + sizeof(h));
  m.exit = VmExit{static_cast<ExitReason>(h.reason), std::string(text, h.detail_size), h.vcpu};
  m.exit.diagnostics.assign(text + h.detail_size, h.diagnostics_size);
  // Numbers only: whatever the VMM claims, they end up as numbers in a report.
  m.timeline = BootTimeline{h.build_start_ns, h.build_end_ns, h.first_run_ns, h.first_run_cpu_ns, h.stop_ns, {}};
  for (size_t i = 0; i < kBootPhaseCount; ++i) m.timeline.phases[i] = PhaseStamp{h.phases[i][0], h.phases[i][1]};
  return m;
}

Result<std::optional<Received>> receive_message(int fd) {
  std::vector<uint8_t> buf(kMaxChannelMessage);
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("the VMM channel: recv");
    if (n == 0) return std::optional<Received>{};
    if (static_cast<size_t>(n) > buf.size()) return fail("the VMM channel: a message too large");
    HUSK_TRY_ASSIGN(Received r, decode_message(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n))));
    return std::optional<Received>(std::move(r));
  }
}

}  // namespace husk::vmm
