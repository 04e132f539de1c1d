// The guest's boot as its own clock saw it, for the host's timeline
// (BootInfo -> BootReport): moments of the kernel's boot from its log
// (/dev/kmsg keeps every message whatever the console's loglevel, `quiet`
// included, each with the printk clock's microseconds) and the agent's own
// moments on CLOCK_BOOTTIME (the same clock: both count from the kernel's
// start). Header-only so the unit tests can read a log of their own.
#pragma once

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest-agent/protocol/protocol.h"
#include "runtime/common/unique_fd.h"

namespace husk::guest {

// The kernel's moments: a mark's name and the start of the message that
// makes it (the first such message; "Run " also needs " as init process").
// The order is the boot's; tests/bench/boot_bench.py reads the same
// messages off a console.
struct KernelMarkRule {
  const char* name;
  const char* prefix;
};
inline constexpr KernelMarkRule kKernelMarks[] = {
    {"kernel_start", "Linux version "},         // start_kernel's banner
    {"memory_ready", "Memory: "},               // mm_init: the page allocator is up
    {"cpus_up", "smp: Brought up "},            // every vCPU online
    {"devtmpfs", "devtmpfs: initialized"},      // the driver core; initcalls follow
    {"clocksource", "clocksource: Switched to clocksource "},  // fs_initcall time
    {"initcalls_done", "Freeing unused kernel image"},         // kernel_init's end
    {"init_start", "Run "},                     // PID 1 exec'd (rdinit or /init)
};

struct KmsgRecord {
  uint64_t at_us = 0;
  std::string_view text;
};

// One /dev/kmsg record's first line: "PRI,SEQ,USEC,FLAGS[,...];TEXT".
// Continuation lines (" KEY=VALUE") and anything malformed give nothing.
inline std::optional<KmsgRecord> parse_kmsg_line(std::string_view line) {
  const size_t semi = line.find(';');
  if (line.empty() || line[0] == ' ' || semi == std::string_view::npos) return std::nullopt;
  std::string_view head = line.substr(0, semi);
  // The third comma-separated field is the timestamp.
  for (int skip = 0; skip < 2; ++skip) {
    const size_t comma = head.find(',');
    if (comma == std::string_view::npos) return std::nullopt;
    head.remove_prefix(comma + 1);
  }
  KmsgRecord r;
  const auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), r.at_us);
  if (ec != std::errc{} || end == head.data() || (end != head.data() + head.size() && *end != ',')) {
    return std::nullopt;
  }
  r.text = line.substr(semi + 1);
  return r;
}

// The kernel marks of a log's text (records separated by newlines, as one
// read of a file or successive reads of /dev/kmsg give them), in order.
inline std::vector<agent::proto::BootMark> kernel_marks(std::string_view log) {
  std::vector<agent::proto::BootMark> marks;
  bool seen[std::size(kKernelMarks)] = {};
  while (!log.empty()) {
    const size_t nl = log.find('\n');
    const std::string_view line = log.substr(0, nl);
    log.remove_prefix(nl == std::string_view::npos ? log.size() : nl + 1);
    const std::optional<KmsgRecord> r = parse_kmsg_line(line);
    if (!r) continue;
    for (size_t i = 0; i < std::size(kKernelMarks); ++i) {
      const std::string_view prefix = kKernelMarks[i].prefix;
      if (seen[i] || r->text.substr(0, prefix.size()) != prefix) continue;
      if (prefix == "Run " && r->text.find(" as init process") == std::string_view::npos) continue;
      seen[i] = true;
      marks.push_back({kKernelMarks[i].name, r->at_us});
    }
  }
  return marks;
}

// Reads the kernel's log (at most `cap` bytes; /dev/kmsg gives one record
// per read and EAGAIN at its end when opened non-blocking; EPIPE means
// records were overwritten meanwhile, and reading goes on).
inline std::string read_kernel_log(const char* path = "/dev/kmsg", size_t cap = 1u << 20) {
  std::string log;
  UniqueFd fd(::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return log;
  char buf[8192];
  while (log.size() < cap) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EPIPE)) continue;
    if (n <= 0) break;
    log.append(buf, static_cast<size_t>(n));
    if (log.back() != '\n') log.push_back('\n');
  }
  return log;
}

inline uint64_t boottime_us() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// The report: the kernel's marks and the agent's own, by time, at most
// kMaxBootMarks.
inline agent::proto::BootReport boot_report(std::vector<agent::proto::BootMark> kernel,
                                            const std::vector<agent::proto::BootMark>& own) {
  agent::proto::BootReport r;
  r.marks = std::move(kernel);
  r.marks.insert(r.marks.end(), own.begin(), own.end());
  std::stable_sort(r.marks.begin(), r.marks.end(),
                   [](const auto& a, const auto& b) { return a.at_us < b.at_us; });
  if (r.marks.size() > agent::proto::kMaxBootMarks) r.marks.resize(agent::proto::kMaxBootMarks);
  return r;
}

}  // namespace husk::guest
