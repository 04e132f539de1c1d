#include "runtime/job/result_json.h"

#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/job/units.h"

namespace husk::job {

namespace {

using nlohmann::json;

const char* kind_name(RunKind k) {
  switch (k) {
    case RunKind::kStep: return "step";
    case RunKind::kProcess: return "process";
    case RunKind::kCase: return "case";
  }
  return "step";
}

json run_json(const RunResult& r) {
  json j = {{"name", r.name},
            {"kind", kind_name(r.kind)},
            {"verdict", verdict_code(r.verdict)},
            {"message", r.message},
            {"exit_code", r.exit_code},
            {"signal", r.signal},
            {"wall_ms", r.wall_ms},
            {"cpu_ms", r.cpu_ms},
            {"peak_memory_bytes", r.peak_memory_bytes},
            {"stdout_bytes", r.stdout_bytes},
            {"stderr_bytes", r.stderr_bytes},
            {"stdout_truncated", r.stdout_truncated},
            {"stderr_truncated", r.stderr_truncated},
            {"stdout", r.stdout_head},
            {"stderr", r.stderr_head},
            {"start_ms", r.start_ms},
            {"end_ms", r.end_ms}};
  if (r.kind == RunKind::kCase) j["compare"] = r.compare;
  return j;
}

}  // namespace

std::string result_json(const JobResult& result, const std::string& husk_version) {
  json j;
  j["husk_version"] = husk_version;
  j["job"] = result.job;
  j["verdict"] = verdict_code(result.verdict);
  j["message"] = result.message;
  j["steps"] = json::array();
  for (const RunResult& r : result.steps) j["steps"].push_back(run_json(r));
  j["cases"] = json::array();
  std::map<std::string, int> by_verdict;
  int passed = 0;
  for (const RunResult& r : result.cases) {
    j["cases"].push_back(run_json(r));
    ++by_verdict[verdict_code(r.verdict)];
    if (r.verdict == Verdict::kOk) ++passed;
  }
  j["summary"] = {{"cases", result.cases.size()}, {"passed", passed}, {"by_verdict", by_verdict}};
  j["files"] = json::array();
  for (const CollectedFile& f : result.files) {
    j["files"].push_back({{"guest_path", f.guest_path},
                          {"host_path", f.host_path},
                          {"size", f.size},
                          {"sha256", f.sha256},
                          {"truncated", f.truncated}});
  }
  j["outputs_truncated"] = result.outputs_truncated;
  const Timeline& t = result.timeline;
  // What never happened (a VM that never ran) is left out.
  j["timeline"] = {{"vmm_start_unix_ms", t.vmm_start_unix_ms}, {"end_ms", t.end_ms}};
  if (t.kernel_entry_ms > 0) j["timeline"]["kernel_entry_ms"] = t.kernel_entry_ms;
  if (t.vmm_start_cpu_ms > 0) j["timeline"]["vmm_start_cpu_ms"] = t.vmm_start_cpu_ms;
  if (t.agent_ready_ms > 0) j["timeline"]["agent_ready_ms"] = t.agent_ready_ms;
  if (t.shutdown_ms > 0) j["timeline"]["shutdown_ms"] = t.shutdown_ms;
  if (!t.start.empty()) j["timeline"]["start"] = t.start;
  if (!t.guest.empty()) {
    json marks = json::array();
    for (const GuestMark& m : t.guest) marks.push_back({{"mark", m.name}, {"ms", m.ms}});
    j["timeline"]["guest"] = marks;
  }
  if (!t.host.empty()) {
    json phases = json::object();
    json cpu = json::object();
    for (const HostPhase& p : t.host) {
      phases[p.name] = p.ms;
      cpu[p.name] = p.cpu_ms;
    }
    j["timeline"]["host"] = {{"phases_ms", phases}, {"cpu_ms", cpu}};
  }
  if (result.network) {
    const net::NetReport& n = result.network->report;
    json refused = json::array();
    for (const net::Refusal& r : n.refused) {
      refused.push_back({{"direction", r.direction}, {"protocol", r.protocol}, {"destination", r.destination},
                         {"port", r.port}, {"reason", r.reason}, {"count", r.count}});
    }
    j["network"] = {{"mode", result.network->mode},   {"backend", result.network->backend},
                    {"bytes_out", n.bytes_out},       {"bytes_in", n.bytes_in},
                    {"frames_out", n.frames_out},     {"frames_in", n.frames_in},
                    {"dropped_out", n.dropped_out},   {"dropped_in", n.dropped_in},
                    {"cap_reached", n.cap_reached},   {"refused", refused}};
  }
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string result_text(const JobResult& result) {
  std::string out;
  const auto line = [&](const RunResult& r) {
    out += fmt::format("  {:<7} {:<2} {:>9.1f} ms {:>10}  {}{}\n", r.kind == RunKind::kCase ? "case" : kind_name(r.kind),
                       verdict_code(r.verdict), r.wall_ms, format_size(r.peak_memory_bytes),
                       r.name, r.message.empty() ? "" : " (" + r.message + ")");
  };
  for (const RunResult& r : result.steps) line(r);
  int passed = 0;
  for (const RunResult& r : result.cases) {
    line(r);
    if (r.verdict == Verdict::kOk) ++passed;
  }
  if (!result.cases.empty()) out += fmt::format("  cases: {} of {} passed\n", passed, result.cases.size());
  for (const CollectedFile& f : result.files) {
    out += fmt::format("  output  {} -> {} ({}{})\n", f.guest_path, f.host_path, format_size(f.size),
                       f.truncated ? ", cut at the outputs cap" : "");
  }
  if (result.network) {
    const net::NetReport& n = result.network->report;
    out += fmt::format("  network {} ({}): {} out, {} in{}\n", result.network->mode, result.network->backend,
                       format_size(n.bytes_out), format_size(n.bytes_in),
                       n.cap_reached ? ", byte cap reached: traffic cut" : "");
    for (const net::Refusal& r : n.refused) {
      out += fmt::format("  refused {} {} {}{} x{} ({})\n", r.direction, r.protocol, r.destination,
                         r.port != 0 ? fmt::format(":{}", r.port) : "", r.count, r.reason);
    }
  }
  if (!result.console_tail.empty()) out += "  last console lines:\n" + result.console_tail;
  const bool ok = result.verdict == Verdict::kOk;
  out += fmt::format("husk: {}{}{}{}{} ({:.2f} s, agent ready after {:.0f} ms)\n", verdict_code(result.verdict),
                     ok ? "" : " ", ok ? "" : verdict_meaning(result.verdict), result.message.empty() ? "" : ": ",
                     result.message, result.timeline.end_ms / 1e3, result.timeline.agent_ready_ms);
  return out;
}

}  // namespace husk::job
