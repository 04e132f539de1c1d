#include "runtime/net/egress_policy.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace husk::net {

namespace {

constexpr std::string_view kRuleForms =
    "a host name, *.domain, IPv4 address or CIDR, or [IPv6] address or CIDR, with an optional :PORT or "
    ":FIRST-LAST";
constexpr std::string_view kRuleExamples =
    "\"mirror.example.org:443\", \"*.example.com\", \"10.0.0.0/8:5432\", \"[2001:db8::1]:443\"";

Unexpected rule_error(std::string_view text, std::string_view why, std::string_view example) {
  return fail(fmt::format("\"{}\": {} (e.g. \"{}\")", text, why, example));
}

// A decimal port 1-65535, nothing else (no sign, no spaces).
std::optional<uint16_t> parse_port(std::string_view digits) {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::optional<PortRange> parse_ports(std::string_view text) {
  const size_t dash = text.find('-');
  const auto first = parse_port(text.substr(0, dash));
  if (!first) return std::nullopt;
  if (dash == std::string_view::npos) return PortRange{*first, *first};
  const auto last = parse_port(text.substr(dash + 1));
  if (!last || *last < *first) return std::nullopt;
  return PortRange{*first, *last};
}

// An RFC 1123 label: letters, digits and '-', 1-63 characters, no '-' at
// either end. Underscores are allowed too (service names such as "_dmarc").
bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// Checks and lower-cases a DNS name; on error, the message's reason.
std::optional<std::string> check_name(std::string_view name, std::string& why) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) {
    why = "expected a host name";
    return std::nullopt;
  }
  if (name.size() > 253) {
    why = "a host name is at most 253 characters";
    return std::nullopt;
  }
  bool all_numeric = true;
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = std::min(name.find('.', start), name.size());
    const std::string_view label = name.substr(start, dot - start);
    if (!valid_label(label)) {
      why = fmt::format("\"{}\" is not a valid DNS label (letters, digits and '-', 1-63 characters)", label);
      return std::nullopt;
    }
    all_numeric = all_numeric && std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
    start = dot + 1;
  }
  if (all_numeric) {
    why = "not a valid IPv4 address";
    return std::nullopt;
  }
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return lower;
}

// Splits "HOST:PORTS" at its only colon; a host with no colon has all ports.
Result<AllowRule> host_and_ports(std::string_view text, std::string_view host, std::string_view ports) {
  AllowRule rule;
  rule.text = std::string(text);
  if (!ports.empty() || text.back() == ':') {
    const auto range = parse_ports(ports);
    if (!range) {
      return rule_error(text, "port must be 1-65535, or a range FIRST-LAST such as 8000-8100",
                        fmt::format("{}:443", host.empty() ? "mirror.example.org" : host));
    }
    rule.ports = *range;
  }
  if (host.empty()) return rule_error(text, fmt::format("expected {}", kRuleForms), "mirror.example.org:443");
  const bool bracketed = host.front() == '[';
  if (bracketed || host.find('/') != std::string_view::npos || IpAddress::parse(host) ||
      host.find_first_not_of("0123456789./") == std::string_view::npos) {
    std::string_view address = host;
    std::string suffix;
    if (bracketed) {
      const size_t close = host.find(']');
      if (close == std::string_view::npos) return rule_error(text, "missing ']' after the IPv6 address", "[2001:db8::1]:443");
      address = host.substr(1, close - 1);
      suffix = std::string(host.substr(close + 1));
      if (!suffix.empty() && suffix.front() != '/') return rule_error(text, "expected /PREFIX or :PORT after ']'", "[2001:db8::]/32:443");
      if (!IpAddress::parse(address) || IpAddress::parse(address)->is_v4()) {
        return rule_error(text, "expected an IPv6 address inside [ ]", "[2001:db8::1]:443");
      }
    }
    const std::string cidr_text = std::string(address) + suffix;
    const auto cidr = Cidr::parse(cidr_text);
    if (!cidr) {
      const size_t slash = cidr_text.find('/');
      const auto base = IpAddress::parse(std::string_view(cidr_text).substr(0, slash));
      if (!base) {
        return rule_error(text, "not a valid IP address", bracketed ? "[2001:db8::1]:443" : "10.0.0.1:443");
      }
      return base->is_v4() ? rule_error(text, "prefix must be 0-32 for IPv4", "10.0.0.0/8")
                           : rule_error(text, "prefix must be 0-128 for IPv6", "[2001:db8::]/32");
    }
    rule.kind = AllowRule::Kind::kCidr;
    rule.cidr = *cidr;
    return rule;
  }
  std::string_view name = host;
  if (name.starts_with("*.")) {
    rule.kind = AllowRule::Kind::kWildcard;
    name.remove_prefix(2);
  } else if (name.find('*') != std::string_view::npos) {
    return rule_error(text, "a wildcard is only allowed as the first label, \"*.\"", "*.example.com");
  }
  std::string why;
  auto checked = check_name(name, why);
  if (!checked) return rule_error(text, why, "mirror.example.org:443");
  rule.name = std::move(*checked);
  if (rule.kind == AllowRule::Kind::kName && rule.name == kHostAliasName) rule.kind = AllowRule::Kind::kHostAlias;
  return rule;
}

}  // namespace

Result<AllowRule> parse_allow_rule(std::string_view text) {
  if (text.empty()) return fail(fmt::format("\"\": expected {} (e.g. {})", kRuleForms, kRuleExamples));
  if (text.find_first_of(" \t\r\n") != std::string_view::npos) {
    return rule_error(text, "spaces are not allowed in a rule", "mirror.example.org:443");
  }
  if (text.front() == '[') {
    // [IPV6][/N][:PORTS]: the port follows the last ':' after the ']'.
    const size_t close = text.find(']');
    const size_t colon = close == std::string_view::npos ? std::string_view::npos : text.find(':', close);
    if (colon == std::string_view::npos) return host_and_ports(text, text, {});
    return host_and_ports(text, text.substr(0, colon), text.substr(colon + 1));
  }
  const size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
    // Two colons or more: a bare IPv6 address or CIDR, which cannot carry a port.
    if (!Cidr::parse(text)) {
      return rule_error(text, "not a valid IPv6 address or CIDR; put an IPv6 address in [ ] to add a port",
                        "[2001:db8::1]:443");
    }
    return host_and_ports(text, text, {});
  }
  if (colon == std::string_view::npos) return host_and_ports(text, text, {});
  return host_and_ports(text, text.substr(0, colon), text.substr(colon + 1));
}

bool name_matches(const AllowRule& rule, std::string_view name) {
  if (rule.kind == AllowRule::Kind::kName) return name == rule.name;
  if (rule.kind != AllowRule::Kind::kWildcard) return false;
  // "*.example.com" matches "a.example.com" and "a.b.example.com", but neither
  // "example.com" nor "badexample.com": the label boundary must be a dot.
  return name.size() > rule.name.size() + 1 && name.ends_with(rule.name) &&
         name[name.size() - rule.name.size() - 1] == '.';
}

Result<Publish> parse_publish(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return fail(fmt::format("\"{}\": {} (e.g. \"8080:80\", \"5353:53/udp\" or \"80\")", text, why));
  };
  if (text.empty()) return bad("expected HOST_PORT:GUEST_PORT[/tcp|/udp] or PORT");
  Publish p;
  p.text = std::string(text);
  std::string_view ports = text;
  const size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    const std::string_view proto = text.substr(slash + 1);
    if (proto == "udp") {
      p.protocol = Protocol::kUdp;
    } else if (proto != "tcp") {
      return bad("protocol must be tcp or udp");
    }
    ports = text.substr(0, slash);
  }
  const size_t colon = ports.find(':');
  const auto host = parse_port(ports.substr(0, colon));
  const auto guest = colon == std::string_view::npos ? host : parse_port(ports.substr(colon + 1));
  if (!host || !guest) return bad("ports must be 1-65535");
  p.host_port = *host;
  p.guest_port = *guest;
  return p;
}

std::string_view protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp: return "tcp";
    case Protocol::kUdp: return "udp";
    case Protocol::kIcmp: return "icmp";
  }
  return "other";
}

}  // namespace husk::net
