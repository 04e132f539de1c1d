// The VMM channel's messages (runtime/vmm/vmm_channel.h): a round trip of
// each kind over a real socket pair, and what husk does with bytes that are
// not a message (the VMM process may be compromised).
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/vmm/vmm_channel.h"

using namespace husk;
using namespace husk::vmm;

namespace {
struct Pair {
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0); }
  ~Pair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2];
};
}  // namespace

TEST_CASE("vmm channel: an exit with its timeline arrives whole", "[vmm]") {
  Pair p;
  ChannelMessage m;
  m.kind = ChannelKind::kExit;
  m.exit = VmExit{ExitReason::kTripleFault, "triple fault", 1};
  m.exit.diagnostics = "rip=0x1000\nrsp=0x2000\n";
  m.timeline = BootTimeline{1, 2, 3, 4, 5, {}};
  for (size_t i = 0; i < kBootPhaseCount; ++i) {
    m.timeline.phases[i] = PhaseStamp{static_cast<int64_t>(1000 + i), static_cast<int64_t>(2000 + i)};
  }
  REQUIRE(send_message(p.fds[0], m));
  auto r = receive_message(p.fds[1]);
  REQUIRE(r);
  REQUIRE(*r);
  auto* got = std::get_if<ChannelMessage>(&**r);
  REQUIRE(got != nullptr);
  CHECK(got->kind == ChannelKind::kExit);
  CHECK(got->exit.reason == ExitReason::kTripleFault);
  CHECK(got->exit.detail == "triple fault");
  CHECK(got->exit.vcpu == 1);
  CHECK(got->exit.diagnostics == m.exit.diagnostics);
  CHECK(got->timeline.first_run_ns == 3);
  CHECK(got->timeline.stop_ns == 5);
  // Every host phase, its time and its CPU time.
  for (size_t i = 0; i < kBootPhaseCount; ++i) {
    INFO(boot_phase_name(static_cast<BootPhase>(i)));
    CHECK(got->timeline.phases[i].ns == static_cast<int64_t>(1000 + i));
    CHECK(got->timeline.phases[i].cpu_ns == static_cast<int64_t>(2000 + i));
  }
}

TEST_CASE("vmm channel: the host phases have distinct names", "[vmm]") {
  std::set<std::string> names;
  for (size_t i = 0; i < kBootPhaseCount; ++i) names.insert(boot_phase_name(static_cast<BootPhase>(i)));
  CHECK(names.size() == kBootPhaseCount);
  CHECK(names.count("?") == 0);
  CHECK(std::string(boot_phase_name(BootPhase::kProcessStart)) == "process_start");
}

TEST_CASE("vmm channel: a built message carries the build's phases", "[vmm]") {
  Pair p;
  ChannelMessage m;
  m.kind = ChannelKind::kBuilt;
  m.timeline.mark(BootPhase::kKvmOpened);
  m.timeline.mark(BootPhase::kVcpusReady);
  REQUIRE(send_message(p.fds[0], m));
  auto r = receive_message(p.fds[1]);
  REQUIRE(r);
  REQUIRE(*r);
  auto* got = std::get_if<ChannelMessage>(&**r);
  REQUIRE(got != nullptr);
  CHECK(got->timeline.at(BootPhase::kKvmOpened).ns == m.timeline.at(BootPhase::kKvmOpened).ns);
  CHECK(got->timeline.at(BootPhase::kKvmOpened).ns > 0);
  CHECK(got->timeline.at(BootPhase::kVcpusReady).ns >= got->timeline.at(BootPhase::kKvmOpened).ns);
  CHECK(got->timeline.at(BootPhase::kVcpusReady).cpu_ns == m.timeline.at(BootPhase::kVcpusReady).cpu_ns);
  CHECK(got->timeline.at(BootPhase::kJailEntered).ns == 0);
}

TEST_CASE("vmm channel: a detail too long for one message is cut, not lost", "[vmm]") {
  Pair p;
  ChannelMessage m;
  m.kind = ChannelKind::kBuildFailed;
  m.exit.detail = std::string(200 * 1024, 'x');
  REQUIRE(send_message(p.fds[0], m));
  auto r = receive_message(p.fds[1]);
  REQUIRE(r);
  auto* got = std::get_if<ChannelMessage>(&**r);
  REQUIRE(got != nullptr);
  CHECK(got->exit.detail.size() < kMaxChannelMessage);
  CHECK(got->exit.detail.size() > 1000);
}

TEST_CASE("vmm channel: signal numbers, report lines and garbage", "[vmm]") {
  const int32_t term = 15;
  auto sig = decode_message(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&term), 4));
  REQUIRE(sig);
  REQUIRE(std::holds_alternative<SignalNumber>(*sig));
  CHECK(std::get<SignalNumber>(*sig).signo == 15);

  const int32_t bad = 1000;
  CHECK_FALSE(decode_message(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&bad), 4)));

  const std::string line = "husk: seccomp: the rng thread \"husk-rng0\" made a forbidden system call: socket (41)\n";
  auto report = decode_message(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(line.data()), line.size()));
  REQUIRE(report);
  REQUIRE(std::holds_alternative<ReportLine>(*report));
  CHECK(std::get<ReportLine>(*report).text == line.substr(0, line.size() - 1));

  // A header whose sizes claim more than arrived.
  std::vector<uint8_t> lying(1024, 0);  // longer than any header
  const uint32_t kind = static_cast<uint32_t>(ChannelKind::kExit);
  std::memcpy(lying.data(), &kind, 4);
  const uint32_t huge = 1u << 30;
  std::memcpy(lying.data() + 12, &huge, 4);
  CHECK_FALSE(decode_message(lying));
}

TEST_CASE("vmm channel: the end of the stream is not a message", "[vmm]") {
  Pair p;
  ::shutdown(p.fds[0], SHUT_WR);
  auto r = receive_message(p.fds[1]);
  REQUIRE(r);
  CHECK_FALSE(*r);
}
