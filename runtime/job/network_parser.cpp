#include "runtime/job/network_parser.h"

#include <fmt/format.h>

#include "runtime/job/units.h"

namespace husk::job {

namespace {

constexpr std::string_view kPrefix = "network.";

// "1MiB" or "1MiB/s": bytes per second.
std::optional<uint64_t> rate(TomlReader& r, const toml::table& t, std::string_view key) {
  auto text = r.string(t, kPrefix, key);
  if (!text) return std::nullopt;
  std::string_view v = *text;
  if (v.size() > 2 && v.substr(v.size() - 2) == "/s") v.remove_suffix(2);
  auto bytes = parse_size(v);
  if (!bytes || *bytes == 0) {
    r.error(TomlReader::where(t, key), fmt::format("network.{}", key),
            fmt::format("expected a size per second, e.g. \"10MiB/s\" or \"512KiB\", not \"{}\"", *text));
    return std::nullopt;
  }
  return *bytes;
}

// Each string of `key` through `parse`; problems name the element.
template <typename T, typename Parse>
std::vector<T> each(TomlReader& r, const toml::table& t, std::string_view key, Parse parse) {
  std::vector<T> out;
  auto texts = r.strings(t, kPrefix, key);
  if (!texts) return out;
  for (size_t i = 0; i < texts->size(); ++i) {
    auto value = parse((*texts)[i]);
    if (!value) {
      r.error(TomlReader::where(t, key), fmt::format("network.{}[{}]", key, i), value.error().message);
      continue;
    }
    out.push_back(std::move(*value));
  }
  return out;
}

}  // namespace

void parse_network(TomlReader& r, const toml::table& t, net::NetworkSpec& spec) {
  r.check_keys(t, kPrefix, {"mode", "backend", "allow", "publish", "bandwidth", "packets_per_second", "max_bytes",
                         "dns"});
  if (auto mode = r.choice(t, kPrefix, "mode", {"none", "egress", "open"})) {
    spec.mode = *mode == "egress" ? net::NetMode::kEgress : *mode == "open" ? net::NetMode::kOpen : net::NetMode::kNone;
  }
  if (auto backend = r.choice(t, kPrefix, "backend", {"passt", "tap"})) {
    spec.backend = *backend == "tap" ? net::BackendKind::kTap : net::BackendKind::kPasst;
  }
  spec.allow = each<net::AllowRule>(r, t, "allow", [](const std::string& s) { return net::parse_allow_rule(s); });
  spec.publish = each<net::Publish>(r, t, "publish", [](const std::string& s) { return net::parse_publish(s); });
  if (auto bytes = rate(r, t, "bandwidth")) spec.rate.bytes_per_second = *bytes;
  if (auto pps = r.integer(t, kPrefix, "packets_per_second", 1, 100'000'000)) {
    spec.rate.frames_per_second = static_cast<uint64_t>(*pps);
  }
  if (auto cap = r.size(t, kPrefix, "max_bytes", 1, uint64_t{1} << 50)) spec.max_bytes = *cap;
  spec.dns = each<std::string>(r, t, "dns", [](const std::string& s) -> Result<std::string> {
    auto a = net::IpAddress::parse(s);
    if (!a || !a->is_v4()) return fail(fmt::format("\"{}\": expected an IPv4 address, e.g. \"192.0.2.53\"", s));
    return s;
  });

  // Keys that mean nothing in the chosen mode are refused, not ignored: a
  // job that lists allowed hosts but forgot the mode must not run closed
  // (or open) by surprise.
  const bool closed = spec.mode == net::NetMode::kNone;
  for (const char* key : {"backend", "allow", "publish", "bandwidth", "packets_per_second", "max_bytes", "dns"}) {
    if (closed && t.contains(key)) {
      r.error(TomlReader::where(t, key), fmt::format("network.{}", key),
              "needs network.mode = \"egress\" or \"open\" (the default, \"none\", has no network)");
    }
  }
  if (spec.mode == net::NetMode::kOpen && t.contains("allow")) {
    r.error(TomlReader::where(t, "allow"), "network.allow",
            "only for mode = \"egress\" (\"open\" allows every destination)");
  }
  if (spec.mode == net::NetMode::kEgress && spec.allow.empty() && !t.contains("allow")) {
    r.error(TomlReader::where(t, "mode"), "network.mode",
            "\"egress\" needs network.allow, the destinations the job may reach, e.g. allow = "
            "[\"mirror.example.org:443\"]");
  }
}

}  // namespace husk::job
