// End-to-end, the real guest turned hostile (issue 11, items 6 and 7): jobs
// that flood the console (the serial port, /dev/console, /dev/kmsg), open
// thousands of vsock connections to the host (refused, at once, never
// accepted, never read by the guest, never read by the host), fill their
// file systems and a copy-on-write disk until ENOSPC, fork without end and
// allocate all the guest's memory. Guest programs: tests/e2e/guest/
// hostile_guest.c (built here with cc -static); jobs:
// tests/e2e/jobs/hostile_guest/.
//
// For each, husk runs as a child of the test and is sampled from /proc
// (tests/e2e/hostile_support.h), and the test checks that:
//   - the host stays responsive: husk's own memory (RSS without the guest's
//     RAM) stays under kOwnRssMax, the console file under its 64 MiB cap,
//     and husk's CPU is not pinned while the guest is idle (kIdleCpuMax);
//   - each hostile run ends with a verdict and a reason in the JSON result
//     (or a refusal the guest program sees), and the VM goes on or is
//     stopped with a reason;
//   - nothing is left: no husk-vm-* folder, no file in TMPDIR, no process,
//     no open Unix socket, no KVM kernel thread.
// Each case prints its figures ("hostile: ...") on stderr. Cases tagged
// [!mayfail] name the host bug they show in a comment above them.
// Not here: the 64 MiB console cap itself (the serial port moves 3 to 14
// KiB/s in the nested test host, hours to the cap: the unit tests of
// runtime/devices/legacy/console_sink cover it), killing or replacing the
// agent and connections to it (tests/e2e/hostile_agent_test.cpp).
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/e2e/hostile_support.h"

using namespace husk::test;
using namespace husk::test::run;
using namespace husk::test::hostile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kGuestMib = 256;
// husk's own memory: its RSS less the guest RAM mapping.
constexpr uint64_t kOwnRssMax = 200 * kMiB;
// husk's CPU (all threads, guest time included) while the guest sleeps, in
// CPU seconds per second: "not pinned" is far below 1. Measured in the
// nested test host: 0.004 to 0.017 (its timer interrupts and exits cost far
// more than hardware's).
constexpr double kIdleCpuMax = 0.1;
constexpr uint64_t kConsoleCap = 64 * kMiB;

// "key=value key=value ..." from a line of a guest program's stdout.
std::map<std::string, std::string> summary_of(const std::string& text) {
  std::map<std::string, std::string> out;
  static const std::regex kv(R"(([a-z_]+)=(\S+))");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kv); it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = (*it)[2];
  }
  return out;
}

long num(const std::map<std::string, std::string>& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? -1 : std::stol(it->second);
}

// The common checks of a `husk run` that must stay bounded: memory, and the
// CPU while the guest idles in the run named `idle_step`.
void check_host_bounded(const Monitored& m, const std::string& idle_step) {
  std::fprintf(stderr, "hostile:   husk's own RSS: peak %.1f MiB, at the end %.1f MiB\n",
               static_cast<double>(m.peak_own_rss()) / kMiB,
               m.samples.empty() ? 0.0 : static_cast<double>(m.samples.back().own_rss()) / kMiB);
  CHECK(m.peak_own_rss() < kOwnRssMax);
  CHECK(m.max_rss() < kGuestMib * kMiB + kOwnRssMax);
  CHECK(m.peak_console() <= kConsoleCap + 256);
  const json& idle = run_named(m.result.at("steps"), idle_step);
  const CpuRate rate = cpu_rate(m, run_window(m.result, idle, 1000, 300));
  std::fprintf(stderr, "hostile:   idle step '%s': husk CPU %.3f s/s (own, without guest time: %.3f) over %.1f s\n",
               idle_step.c_str(), rate.total, rate.host, rate.seconds);
  REQUIRE(rate.total >= 0);
  CHECK(rate.total < kIdleCpuMax);
}

// The result of the procs.toml run, for the case after it.
json& procs_result() {
  static json result;
  return result;
}

std::string build_program_into(const Sandbox& sb) {
  const std::string dir = sb.copy_job("hostile_guest");
  build_guest_program(dir + "/hostile_guest");
  return dir;
}

}  // namespace

TEST_CASE("hostile guest: console floods (serial port; /dev/console; kmsg) are bounded and an idle guest costs little",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const Monitored m = monitored_run(sb, job_path("hostile_guest/console.toml"), kGuestMib);
  report("console floods", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(m.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"idle-before", "ttyS0", "console", "kmsg", "idle"});

  const std::map<std::string, std::string> marker = {
      {"ttyS0", "hostile-ttyS0-flood"}, {"console", "hostile-console-flood"}, {"kmsg", "hostile-kmsg-flood"}};
  for (const auto& [name, text] : marker) {
    const json& s = run_named(steps, name);
    INFO("step " << name << ": " << s.dump().substr(0, 800));
    CHECK(str(s, "verdict") == "TO");
    CHECK(contains(str(s, "message"), "wall time limit of 3 s"));
    CHECK(s.at("wall_ms").get<double>() < 3000 + 4000);
    // The flood reached the host's console file while it ran.
    const auto in = samples_in(m, run_window(res, s));
    REQUIRE(in.size() >= 2);
    const uint64_t grew = in.back()->console_bytes - in.front()->console_bytes;
    const bool seen = std::any_of(in.begin(), in.end(), [&](const Sample* x) { return contains(x->console_tail, text); });
    const CpuRate rate = cpu_rate(m, run_window(res, s, 500, 500));
    std::fprintf(stderr,
                 "hostile:   flood '%s': console +%.1f KiB in %.1f s (%.1f KiB/s); husk CPU %.2f s/s (own %.2f)\n",
                 name.c_str(), static_cast<double>(grew) / 1024, rate.seconds,
                 rate.seconds > 0 ? static_cast<double>(grew) / 1024 / rate.seconds : 0.0, rate.total, rate.host);
    CHECK(grew > 1024);
    CHECK(seen);
  }
  CHECK(str(run_named(steps, "idle"), "stdout") == "alive\n");
  // The idle guest writes nothing to the console.
  const auto idle = samples_in(m, run_window(res, run_named(steps, "idle"), 1000, 300));
  REQUIRE(idle.size() >= 2);
  CHECK(idle.back()->console_bytes - idle.front()->console_bytes < 1024);
  {
    const CpuRate before = cpu_rate(m, run_window(res, run_named(steps, "idle-before"), 500, 300));
    std::fprintf(stderr, "hostile:   idle step 'idle-before': husk CPU %.3f s/s (own %.3f)\n", before.total,
                 before.host);
  }
  check_host_bounded(m, "idle");
  check_nothing_left_behind(sb, m);
}

TEST_CASE("hostile guest: thousands of vsock connections (refused; at once; never accepted; never read by the guest)",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const std::string dir = build_program_into(sb);
  // 5001: writes to every connection until it takes no more (at most 24 MiB
  // each); 5003: listens, backlog 16, never accepts.
  HostPeer writer(HostPeer::Mode::kWriteUntilStall, 24 * kMiB);
  HostPeer never_accepts(HostPeer::Mode::kNeverAccept, 0, 16);
  const Monitored m = monitored_run(sb, dir + "/vsock.toml", kGuestMib, [&](const std::string& vm) {
    writer.start(vm + "/vsock.sock_5001");
    never_accepts.start(vm + "/vsock.sock_5003");
  });
  const std::vector<HostPeer::Conn> conns = writer.conns();
  CHECK(writer.bound());
  CHECK(never_accepts.bound());
  writer.stop();
  never_accepts.stop();
  report("vsock connections", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(m.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"refused", "burst", "never-accepted", "never-reads", "idle"});
  for (const json& s : steps) {
    INFO("step: " << s.dump().substr(0, 800));
    CHECK(str(s, "verdict") == "OK");
  }
  {
    const auto sum = summary_of(str(run_named(steps, "refused"), "stdout"));
    INFO("refused: " << str(run_named(steps, "refused"), "stdout"));
    CHECK(num(sum, "refused") == 3000);
    CHECK(num(sum, "connected") == 0);
    std::fprintf(stderr, "hostile:   3000 refused connections one after another took %s s in the guest\n",
                 sum.count("seconds") ? sum.at("seconds").c_str() : "?");
  }
  {
    const auto sum = summary_of(str(run_named(steps, "burst"), "stdout"));
    INFO("burst: " << str(run_named(steps, "burst"), "stdout"));
    CHECK(num(sum, "started") == 2000);
    CHECK(num(sum, "refused") == 2000);
    CHECK(num(sum, "connected") == 0);
    CHECK(num(sum, "pending") == 0);
    std::fprintf(stderr, "hostile:   2000 connections at once: %s\n", str(run_named(steps, "burst"), "stdout").c_str());
  }
  {
    // The host program's backlog takes a few; the rest are refused at once
    // (husk's connect to the Unix socket would block: it resets instead).
    const std::string out = str(run_named(steps, "never-accepted"), "stdout");
    const auto sum = summary_of(out);
    INFO("never-accepted: " << out);
    CHECK(num(sum, "connected") >= 1);
    CHECK(num(sum, "connected") <= 16 + 2);
    CHECK(num(sum, "connected") + num(sum, "failed") == 300);
    CHECK(run_named(steps, "never-accepted").at("wall_ms").get<double>() < 60000);
    std::fprintf(stderr, "hostile:   300 connections to a host port that never accepts: %s", out.c_str());
  }
  {
    // The guest never reads: the host program's writes stall once the
    // guest's receive buffer (its credit) and the socket buffers are full.
    const json& s = run_named(steps, "never-reads");
    const std::string out = str(s, "stdout");
    INFO("never-reads: " << out);
    CHECK(num(summary_of(out), "connected") == 200);
    REQUIRE(conns.size() == 200);
    std::vector<uint64_t> written;
    double last_progress = 0;
    for (const HostPeer::Conn& c : conns) {
      written.push_back(c.written);
      last_progress = std::max(last_progress, c.last_progress_ms);
    }
    std::sort(written.begin(), written.end());
    const Window w = run_window(res, s);
    std::fprintf(stderr,
                 "hostile:   guest never reads: the host wrote %.0f KiB (min) to %.0f KiB (median of the 196) per "
                 "connection, %.1f MiB to the 4 with a 16 MiB buffer (min %.1f); last progress %.1f s into the %.1f s "
                 "step\n",
                 static_cast<double>(written.front()) / 1024, static_cast<double>(written[98]) / 1024,
                 static_cast<double>(written.back()) / kMiB, static_cast<double>(written[196]) / kMiB,
                 (last_progress - w.from_ms) / 1e3, w.seconds());
    // 196 with the default 256 KiB buffer: at least that got through, and
    // not much more than that plus the host socket's buffer.
    CHECK(written.front() >= 256 * 1024);
    CHECK(written[195] <= 2 * kMiB);
    // 4 announced 16 MiB: the host honours the credit the guest gives, and
    // stops there too (the host program would write 24 MiB).
    CHECK(written[196] >= 16 * kMiB);
    CHECK(written.back() <= 18 * kMiB);
    // Every write stalled well before the guest let go (10 s hold).
    CHECK(last_progress < w.to_ms - 3000);
    // While the host's writes stall, husk does not spin.
    const CpuRate stalled = cpu_rate(m, Window{last_progress + 500, w.to_ms - 1500});
    std::fprintf(stderr, "hostile:   while the host's writes stall: husk CPU %.3f s/s (own %.3f) over %.1f s\n",
                 stalled.total, stalled.host, stalled.seconds);
    REQUIRE(stalled.total >= 0);
    CHECK(stalled.total < kIdleCpuMax);
    // husk held a descriptor per connection, and gave them all back.
    const auto during = samples_in(m, Window{last_progress, w.to_ms - 1500});
    REQUIRE_FALSE(during.empty());
    const auto first = samples_in(m, run_window(res, run_named(steps, "refused")));
    REQUIRE_FALSE(first.empty());
    const auto idle = samples_in(m, run_window(res, run_named(steps, "idle"), 1000, 300));
    REQUIRE_FALSE(idle.empty());
    std::fprintf(stderr, "hostile:   husk fds: %d at the first step, %d while 200 connections are held, %d when idle\n",
                 first.front()->fds, during.front()->fds, idle.back()->fds);
    CHECK(during.front()->fds >= first.front()->fds + 200);
    // What may be new: an eventfd per busy virtio device (the transport
    // makes its self-kick the first time a notification's budget runs out),
    // never a socket.
    const std::vector<std::string> extra = new_fds(*first.front(), *idle.back());
    CAPTURE(extra);
    CHECK(extra.size() <= 2);
    for (const std::string& fd : extra) CHECK(contains(fd, "anon_inode:[eventfd]"));
    CHECK(idle.back()->fds <= first.front()->fds + static_cast<int>(extra.size()));
  }
  CHECK(str(run_named(steps, "idle"), "stdout") == "alive\n");
  check_host_bounded(m, "idle");
  check_nothing_left_behind(sb, m);
}

// The guest writes into host peers that never read. husk holds the guest
// bytes a host socket cannot take yet: per connection up to the credit it
// gives (kConnectionBufAlloc, 256 KiB), and in all up to
// VsockBudgets::max_held_bytes (16 MiB); the guest may open at most
// VsockBudgets::max_guest_connections (512) connections, the rest are reset.
// (Before those budgets, 1000 connections made husk hold 261 MiB.)
//
// Once a HOST BUG, fixed in 58feaa7 (runtime/devices/virtio/vsock/vsock.cpp,
// Vsock::process_tx, since 548249e): past max_held_bytes the device stops
// taking anything from the guest's one tx queue, which every connection
// shares, the agent's too. The agent's frames (the job's output, its exit
// report) and the guest's other packets then wait behind bytes no host
// socket will ever take: the run cannot end, the agent cannot report the
// wall limit it enforced, and the host's deadline stops the whole VM (TO,
// "no answer from the guest"); a run without a wall limit has no such
// deadline and waits forever. Now the connection that adds bytes past the
// budget is reset instead, and the queue never waits.
TEST_CASE("hostile guest: 1000 connections written into a host program that never reads",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const std::string dir = build_program_into(sb);
  HostPeer sink(HostPeer::Mode::kNeverRead);
  const Monitored m = monitored_run(sb, dir + "/vsock_send.toml", kGuestMib,
                                    [&](const std::string& vm) { sink.start(vm + "/vsock.sock_5002"); });
  const size_t accepted = sink.conns().size();
  CHECK(sink.bound());
  sink.stop();
  report("guest writes, host never reads", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(str(res, "verdict") == "OK");
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"host-never-reads", "idle"});
  const std::string out = str(run_named(steps, "host-never-reads"), "stdout");
  INFO("guest: " << out);
  const auto sum = summary_of(out);
  // The guest's share of the connections; the rest refused with a reset.
  CHECK(num(sum, "connected") == 512);
  CHECK(num(sum, "failed") == 488);
  CHECK(sum.count("last_error") == 1);
  CHECK(contains(out, "last_error=Connection reset by peer"));
  CHECK(accepted == 512);
  std::fprintf(stderr, "hostile:   the guest wrote %.1f MiB in all, at most %.0f KiB on one connection\n",
               static_cast<double>(num(sum, "sent_total")) / kMiB, static_cast<double>(num(sum, "sent_max")) / 1024);
  // Each connection may hold at most the credit husk gives (256 KiB) in
  // husk plus what the host socket buffers.
  CHECK(num(sum, "sent_max") <= 1024 * 1024);
  check_host_bounded(m, "idle");
  check_nothing_left_behind(sb, m);
}

TEST_CASE("hostile guest: a job fills its root file system and /tmp until ENOSPC", "[e2e][hostile-guest]") {
  Sandbox sb;
  const std::string dir = sb.copy_job("hostile_guest");
  // The root disk: the default guest's initramfs (busybox and the agent) as
  // an ext4 image.
  {
    const std::string staging = sb.dir.file("root");
    fs::create_directories(staging);
    const ProcessResult unpack = run_process(
        {"sh", "-c", "cd \"$2\" && cpio -idm --quiet < \"$1\"", "sh", guest_file("initramfs.cpio"), staging},
        120);
    INFO("unpack: " << unpack.err);
    REQUIRE(unpack.exit_code == 0);
    const ProcessResult mk =
        run_process({(source_root() / "rootfs" / "disk" / "mkext4").string(), dir + "/root.ext4", staging}, 120);
    INFO("mkext4: " << mk.out << mk.err);
    REQUIRE(mk.exit_code == 0);
  }
  const Monitored m = monitored_run(sb, dir + "/disk.toml", kGuestMib);
  report("file systems full", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"fill-root", "fill-tmp", "after"});
  for (const char* name : {"fill-root", "fill-tmp"}) {
    const json& s = run_named(steps, name);
    INFO("step: " << s.dump().substr(0, 1500));
    CHECK(str(s, "verdict") == "RE");
    CHECK(contains(str(s, "message"), "exit status 1"));
    CHECK(contains(str(s, "stderr"), "No space left on device"));
  }
  CHECK(str(run_named(steps, "after"), "verdict") == "OK");
  CHECK(str(run_named(steps, "after"), "stdout") == "alive\n");
  CHECK(str(res, "verdict") == "OK");
  check_host_bounded(m, "after");
  check_nothing_left_behind(sb, m);
}

// Once a HOST BUG, fixed in cfd13c2 (guest set-up): the guest's tmpfs
// mounts (/ or the root's overlay, /tmp, /dev/shm, /run) may each take half
// of its RAM, so a job that fills three of them holds more than all of it in
// pages that no OOM kill frees. The guest kernel then panics ("System is
// deadlocked on memory": the agent is OOM-exempt and the job's processes
// are gone), the VM dies, and the run is XX, as if husk had failed, instead
// of a verdict charged to the job. Now a job's memory.max is never above the
// guest's RAM less a reserve, and tmpfs pages count against it.
TEST_CASE("hostile guest: a job that fills / and /tmp and /dev/shm beyond the guest's RAM gets its own verdict",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const Monitored m = monitored_run(sb, job_path("hostile_guest/tmpfs_full.toml"), kGuestMib);
  report("tmpfs beyond RAM", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  // Whatever happened in the guest, husk ended cleanly with a reason.
  CHECK(m.signal == 0);
  const bool reason_given = str(res, "verdict") == "OK" || !str(res, "message").empty();
  CHECK(reason_given);
  CHECK(m.peak_own_rss() < kOwnRssMax);
  check_nothing_left_behind(sb, m);
  const json& s = run_named(res.at("steps"), "fill-all");
  std::fprintf(stderr, "hostile:   fill-all: %s: %s\n", str(s, "verdict").c_str(), str(s, "message").c_str());
  const std::string v = str(s, "verdict");
  CHECK((v == "ML" || v == "RE" || v == "SG"));
  REQUIRE(names_of(res.at("steps")) == std::vector<std::string>{"fill-all", "after"});
  CHECK(str(run_named(res.at("steps"), "after"), "stdout") == "alive\n");
}

TEST_CASE("hostile guest: raw writes fill a copy-on-write disk to its size and no further; a read-only one refuses",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const std::string image = sb.dir.file("data.img");
  constexpr uint64_t kDisk = 64 * kMiB;
  {
    std::ofstream(image).close();
    fs::resize_file(image, kDisk);
  }
  // The overlay's size is sampled every 200 ms while husk runs, and the
  // overlay goes with husk: the guest holds the full disk a second after
  // `sync`, so that a sample sees it however soon the rest ends.
  const std::string script =
      "dd if=/dev/zero of=/dev/vda bs=1M; echo raw-dd=$?; sync; sleep 1; "
      "dd if=/dev/zero of=/dev/vdb bs=1M count=1; echo ro-dd=$?; echo alive";
  const Monitored m = monitored_husk(sb,
                                     {"exec", "--kernel", guest_file("vmlinux"), "--initrd",
                                      guest_file("initramfs.cpio"), "--disk", image + ",cow", "--disk",
                                      image + ",ro", "--timeout", "120", "--", "sh", "-c", script},
                                     kRunTimeoutS, kGuestMib);
  report("raw copy-on-write disk full", m);
  INFO("stdout: " << m.out << "\nstderr: " << tail(m.err));
  REQUIRE_FALSE(m.timed_out);
  CHECK(m.exit_code == 0);
  CHECK(contains(m.out, "raw-dd=1\n"));
  CHECK(contains(m.out, "ro-dd=1\n"));
  CHECK(contains(m.out, "alive\n"));
  CHECK(contains(m.err, "No space left on device"));
  // The overlay (an unlinked file in TMPDIR) took the whole disk, no more.
  std::fprintf(stderr, "hostile:   copy-on-write overlay: %.1f MiB at most for a %.0f MiB disk\n",
               static_cast<double>(m.peak_overlay()) / kMiB, static_cast<double>(kDisk) / kMiB);
  CHECK(m.peak_overlay() >= kDisk - 4 * kMiB);
  CHECK(m.peak_overlay() <= kDisk + kMiB);
  CHECK(fs::file_size(image) == kDisk);
  CHECK(m.peak_own_rss() < kOwnRssMax);
  check_nothing_left_behind(sb, m);
}

TEST_CASE("hostile guest: fork without end and allocate all memory: each stopped with its limit; the VM goes on",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  const std::string dir = build_program_into(sb);
  const Monitored m = monitored_run(sb, dir + "/procs.toml", kGuestMib);
  report("fork and memory", m);
  const json& res = m.result;
  INFO("husk exit " << m.exit_code << ", signal " << m.signal << "; stderr (tail): " << tail(m.err));
  REQUIRE(res.is_object());
  INFO("result: " << brief(res));
  CHECK(m.exit_code == 0);
  CHECK(str(res, "verdict") == "OK");
  const json& steps = res.at("steps");
  REQUIRE(names_of(steps) == std::vector<std::string>{"fork-forever", "eat-memory", "after"});
  procs_result() = res;
  {
    const json& s = run_named(steps, "fork-forever");
    INFO("fork-forever: " << s.dump().substr(0, 1500));
    std::fprintf(stderr, "hostile:   fork-forever: %s: %s (wall %.0f ms)\n", str(s, "verdict").c_str(),
                 str(s, "message").c_str(), s.at("wall_ms").get<double>());
    CHECK(str(s, "verdict") == "TO");
    CHECK(contains(str(s, "message"), "wall time limit of 8 s"));
    CHECK(s.at("wall_ms").get<double>() < 8000 + 6000);
  }
  {
    const json& s = run_named(steps, "eat-memory");
    INFO("eat-memory: " << s.dump().substr(0, 1500));
    std::fprintf(stderr, "hostile:   eat-memory: %s: %s (peak %.1f MiB, wall %.0f ms)\n", str(s, "verdict").c_str(),
                 str(s, "message").c_str(), static_cast<double>(s.at("peak_memory_bytes").get<uint64_t>()) / kMiB,
                 s.at("wall_ms").get<double>());
    // No memory limit was set: the guest kernel's OOM killer ended it, and
    // the job's cgroup says so (memory.events oom_kill): ML.
    CHECK(str(s, "verdict") == "ML");
    CHECK(s.at("peak_memory_bytes").get<uint64_t>() > 128 * kMiB);
  }
  CHECK(str(run_named(steps, "after"), "stdout") == "alive\n");
  check_host_bounded(m, "after");
  check_nothing_left_behind(sb, m);
}

// Once a HOST BUG, fixed in cfd13c2 (runtime/job/run_program.cpp,
// set_verdict_from_exit): a job the guest kernel's OOM killer ends when no
// memory limit was set is ML with the message "memory limit of 0 B
// reached": the message named a limit that does not exist; now it says the
// guest ran out of memory. Uses the run of the case above; run alone, it
// makes its own.
TEST_CASE("hostile guest: a job that eats all memory without a memory limit is told what happened",
          "[e2e][hostile-guest]") {
  Sandbox sb;
  if (procs_result().is_null()) {
    const std::string dir = build_program_into(sb);
    const Monitored m = monitored_run(sb, dir + "/procs.toml", kGuestMib);
    REQUIRE(m.result.is_object());
    procs_result() = m.result;
  }
  const json& s = run_named(procs_result().at("steps"), "eat-memory");
  INFO("eat-memory: " << s.dump().substr(0, 1500));
  CHECK(str(s, "verdict") == "ML");
  CHECK_FALSE(contains(str(s, "message"), "limit of 0 B"));
  CHECK_FALSE(str(s, "message").empty());
}

TEST_CASE("hostile guest: husk exec of a fork bomb names the limit that stopped it", "[e2e][hostile-guest]") {
  Sandbox sb;
  const Monitored m = monitored_husk(sb,
                                     {"exec", "--kernel", guest_file("vmlinux"), "--initrd",
                                      guest_file("initramfs.cpio"), "--pids-limit", "64", "--timeout", "10", "--",
                                      "sh", "-c", "b() { b & b; }; b"},
                                     kRunTimeoutS, kGuestMib);
  report("exec fork bomb", m);
  INFO("stdout: " << m.out << "\nstderr: " << tail(m.err));
  REQUIRE_FALSE(m.timed_out);
  CHECK(m.exit_code != 0);
  CHECK(m.exit_code != 125);
  const bool named = contains(m.err, "husk: pids-limit") || contains(m.err, "husk: wall-timeout");
  CHECK(named);
  CHECK(m.peak_own_rss() < kOwnRssMax);
  check_nothing_left_behind(sb, m);
}
