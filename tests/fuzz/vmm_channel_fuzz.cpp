// libFuzzer target for what husk reads from its VMM process's channel
// (runtime/vmm/vmm_channel.h): the VMM process runs next to a hostile
// guest, so a compromised one may send anything. Each input is one
// datagram (a kNetReport's text goes through net::decode_report too).
// Checked, besides no crash, leak or UB: a decoded message's
// detail and diagnostics are within the datagram; a message re-encoded
// and decoded again is the same (round trip); a report line holds no
// control characters.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>

#include "runtime/net/net_report_codec.h"
#include "runtime/vmm/vmm_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace husk::vmm;
  auto decoded = decode_message(std::span<const uint8_t>(data, size));
  if (!decoded) return 0;
  if (auto* line = std::get_if<ReportLine>(&*decoded)) {
    for (char c : line->text) {
      if (static_cast<unsigned char>(c) < 0x20) std::abort();
    }
    return 0;
  }
  auto* m = std::get_if<ChannelMessage>(&*decoded);
  if (m == nullptr) return 0;
  if (m->exit.detail.size() + m->exit.diagnostics.size() > size) std::abort();
  if (m->kind == ChannelKind::kNetReport) {
    // The network report in its detail: bounded whatever the VMM wrote.
    if (auto report = husk::net::decode_report(m->exit.detail)) {
      if (report->refused.size() > 256) std::abort();
      for (const auto& r : report->refused) {
        if (r.destination.size() > 256 || r.reason.size() > 256 || r.protocol.size() > 256) std::abort();
      }
    }
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair) != 0) return 0;
  if (send_message(pair[0], *m)) {
    auto again = receive_message(pair[1]);
    if (!again || !*again) std::abort();
    auto* m2 = std::get_if<ChannelMessage>(&**again);
    if (m2 == nullptr || m2->kind != m->kind || m2->exit.reason != m->exit.reason ||
        m2->exit.detail != m->exit.detail || m2->exit.diagnostics != m->exit.diagnostics ||
        m2->timeline.first_run_ns != m->timeline.first_run_ns) {
      std::abort();
    }
    for (size_t i = 0; i < kBootPhaseCount; ++i) {
      if (m2->timeline.phases[i].ns != m->timeline.phases[i].ns ||
          m2->timeline.phases[i].cpu_ns != m->timeline.phases[i].cpu_ns) {
        std::abort();
      }
    }
  }
  ::close(pair[0]);
  ::close(pair[1]);
  return 0;
}
