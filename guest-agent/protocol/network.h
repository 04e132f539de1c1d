// The checks of a ConfigureNetwork request (protocol.h) beyond its wire
// format, and the text forms of its addresses. Both sides run them: the host
// refuses a bad request before sending it, with a message that names the
// field; the agent, which must not trust the host with what it writes into
// /etc or hands to the kernel, runs them again and answers Error{EINVAL}.
// Names and addresses go into /etc/hosts and /etc/resolv.conf as they are,
// so only characters of hostnames (RFC 1123 section 2.1) and addresses
// inet_pton accepts pass: no spaces, newlines or comments can be injected.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "guest-agent/protocol/protocol.h"

namespace husk::agent::proto {

inline constexpr size_t kMaxHostnameLength = 253;

// Dotted labels of letters, digits and hyphens, 1 to 63 characters each,
// neither starting nor ending with a hyphen; at most 253 characters.
inline bool valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostnameLength) return false;
  size_t label = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (c != '-' || label == 0)) return false;
    ++label;
  }
  return true;
}

inline bool valid_ipv4(const std::string& text) {
  in_addr a{};
  return ::inet_pton(AF_INET, text.c_str(), &a) == 1;
}

inline bool valid_ip(const std::string& text) {
  in6_addr a{};
  return valid_ipv4(text) || ::inet_pton(AF_INET6, text.c_str(), &a) == 1;
}

// 0x0a00020f -> "10.0.2.15".
inline std::string ipv4_text(uint32_t addr) {
  return std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 0xff) + "." +
         std::to_string((addr >> 8) & 0xff) + "." + std::to_string(addr & 0xff);
}

inline std::string mac_text(const std::array<uint8_t, 6>& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5]);
  return buf;
}

// `text` in quotes for a message: at most 64 characters, control and
// non-ASCII bytes as '?', so a bad value cannot break the message's line.
inline std::string quoted(const std::string& text) {
  std::string out = "'" + text.substr(0, 64) + "'";
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

// What is wrong with `m`, or empty when nothing is. The list sizes are
// checked too, for a request built by hand rather than decoded.
inline std::string network_config_error(const ConfigureNetwork& m) {
  if (m.mac == std::array<uint8_t, 6>{}) return "MAC address 00:00:00:00:00:00";
  if (m.mac[0] & 1) return "MAC address " + mac_text(m.mac) + " is a multicast address";
  if (m.address == 0) return "no IPv4 address";
  if (m.prefix_len < 1 || m.prefix_len > 32) {
    return "prefix length " + std::to_string(m.prefix_len) + " (1 to 32)";
  }
  if (m.gateway != 0 && m.gateway == m.address) {
    return "gateway " + ipv4_text(m.gateway) + " is the interface's own address";
  }
  if (m.mtu != 0 && (m.mtu < 68 || m.mtu > 65535)) return "MTU " + std::to_string(m.mtu) + " (68 to 65535)";
  if (m.nameservers.size() > kMaxNameservers) {
    return std::to_string(m.nameservers.size()) + " nameservers (at most " + std::to_string(kMaxNameservers) + ")";
  }
  for (const std::string& ns : m.nameservers) {
    if (!valid_ipv4(ns)) return "nameserver " + quoted(ns) + " is not an IPv4 address";
  }
  if (m.hosts.size() > kMaxHostEntries) {
    return std::to_string(m.hosts.size()) + " host entries (at most " + std::to_string(kMaxHostEntries) + ")";
  }
  for (const HostEntry& h : m.hosts) {
    if (!valid_ip(h.address)) return "host entry address " + quoted(h.address) + " is not an IP address";
    if (!valid_hostname(h.name)) return "host entry name " + quoted(h.name) + " is not a valid hostname";
  }
  return "";
}

}  // namespace husk::agent::proto
