#include "runtime/net/net_report_codec.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace husk::net {

namespace {

constexpr size_t kMaxRefusals = 256;
constexpr size_t kMaxText = 256;  // any one string of a refusal

nlohmann::json refusal_json(const Refusal& r) {
  return {{"direction", r.direction}, {"protocol", r.protocol}, {"destination", r.destination},
          {"port", r.port},           {"reason", r.reason},     {"count", r.count}};
}

std::string text_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  std::string s = it->get<std::string>();
  if (s.size() > kMaxText) s.resize(kMaxText);
  return s;
}

uint64_t count_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return 0;
  return it->get<uint64_t>();
}

}  // namespace

std::string encode_report(const NetReport& report, size_t max_bytes) {
  nlohmann::json j = {{"bytes_out", report.bytes_out},     {"bytes_in", report.bytes_in},
                      {"frames_out", report.frames_out},   {"frames_in", report.frames_in},
                      {"dropped_out", report.dropped_out}, {"dropped_in", report.dropped_in},
                      {"cap_reached", report.cap_reached}, {"refused", nlohmann::json::array()}};
  const size_t n = std::min(report.refused.size(), kMaxRefusals);
  for (size_t i = 0; i < n; ++i) j["refused"].push_back(refusal_json(report.refused[i]));
  std::string text = j.dump();
  while (text.size() > max_bytes && !j["refused"].empty()) {
    j["refused"].erase(j["refused"].size() - 1);
    text = j.dump();
  }
  return text;
}

Result<NetReport> decode_report(std::string_view text) {
  // No exceptions: a text that does not parse is a discarded value.
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("the network report is not a JSON object");
  NetReport r;
  r.bytes_out = count_field(j, "bytes_out");
  r.bytes_in = count_field(j, "bytes_in");
  r.frames_out = count_field(j, "frames_out");
  r.frames_in = count_field(j, "frames_in");
  r.dropped_out = count_field(j, "dropped_out");
  r.dropped_in = count_field(j, "dropped_in");
  if (const auto it = j.find("cap_reached"); it != j.end() && it->is_boolean()) r.cap_reached = it->get<bool>();
  if (const auto it = j.find("refused"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (r.refused.size() >= kMaxRefusals) break;
      if (!e.is_object()) continue;
      Refusal x;
      x.direction = text_field(e, "direction");
      x.protocol = text_field(e, "protocol");
      x.destination = text_field(e, "destination");
      x.reason = text_field(e, "reason");
      x.port = static_cast<uint16_t>(std::min<uint64_t>(count_field(e, "port"), 65535));
      x.count = count_field(e, "count");
      r.refused.push_back(std::move(x));
    }
  }
  return r;
}

}  // namespace husk::net
