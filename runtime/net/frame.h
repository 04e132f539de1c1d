// Bounds-checked views of the headers in an Ethernet II frame (IEEE 802.3
// clause 3.2.6 with an EtherType; ARP RFC 826; IPv4 RFC 791; ICMP RFC 792;
// UDP RFC 768; TCP RFC 9293 section 3.1), and builders for the few frames the
// filter sends back to the guest. Every frame is untrusted: a parse returns
// nullopt unless every field it reports lies inside the bytes given. Views
// point into the caller's frame and live no longer than it.
//
// Not handled: VLAN tags (802.1Q), IPv4 options beyond skipping them, IPv6
// extension headers (IPv6 is only recognised by its EtherType).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "runtime/net/ip_address.h"

namespace husk::net {

using MacAddress = std::array<uint8_t, 6>;
using Bytes = std::span<const uint8_t>;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr size_t kEthernetHeaderSize = 14;
inline constexpr size_t kIpv4MinHeaderSize = 20;

inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpSourceQuench = 4;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParameterProblem = 12;
inline constexpr uint8_t kIcmpCodeAdminProhibited = 13;  // RFC 1812 section 5.2.7.1

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

struct EthernetView {
  MacAddress destination{};
  MacAddress source{};
  uint16_t ethertype = 0;
  Bytes payload{};
};

struct ArpView {
  uint16_t operation = 0;
  MacAddress sender_mac{};
  IpAddress sender_ip{};
  IpAddress target_ip{};
};

struct Ipv4View {
  uint8_t protocol = 0;
  IpAddress source{};
  IpAddress destination{};
  bool fragment = false;  // MF set or a fragment offset: no transport header to trust
  Bytes packet{};         // header and payload, cut to the header's total length
  Bytes payload{};        // after the header (and its options)
};

// TCP, UDP and ICMP share what the filter needs: two 16-bit numbers (ports,
// or an ICMP echo's identifier) and, for ICMP, type and code.
struct TransportView {
  uint16_t source_port = 0;
  uint16_t destination_port = 0;
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint16_t icmp_id = 0;
  Bytes payload{};  // UDP: the datagram's data; ICMP: after the 8-byte header
};

[[nodiscard]] std::optional<EthernetView> parse_ethernet(Bytes frame);
// Ethernet/IPv4 ARP only (RFC 826 with htype 1, ptype 0x0800, 6 and 4).
[[nodiscard]] std::optional<ArpView> parse_arp(Bytes payload);
[[nodiscard]] std::optional<Ipv4View> parse_ipv4(Bytes payload);
[[nodiscard]] std::optional<TransportView> parse_tcp(Bytes segment);
[[nodiscard]] std::optional<TransportView> parse_udp(Bytes datagram);
[[nodiscard]] std::optional<TransportView> parse_icmp(Bytes message);

// The packet an ICMP error quotes (RFC 792: its IP header and at least 8
// bytes of its payload). Unlike parse_ipv4, the total length is not checked
// (the quote is cut short by design); the ports (or an echo's identifier) are
// read only when the quote holds them.
struct QuotedPacket {
  uint8_t protocol = 0;
  IpAddress source{};
  IpAddress destination{};
  bool has_ports = false;
  uint16_t source_port = 0;       // ICMP: type and code
  uint16_t destination_port = 0;  // ICMP: checksum
  uint16_t icmp_id = 0;           // ICMP echo quoted with 8 bytes
};
[[nodiscard]] std::optional<QuotedPacket> parse_icmp_quote(Bytes quote);

// The Internet checksum (RFC 1071) of `data`, folded into `sum` first.
[[nodiscard]] uint16_t internet_checksum(Bytes data, uint32_t sum = 0);

// ICMPv4 destination unreachable, code 13 (administratively prohibited), from
// `from` to `to`, quoting the refused packet's IP header and first 8 bytes of
// payload (RFC 792). The Ethernet addresses are the original frame's, swapped.
[[nodiscard]] std::vector<uint8_t> build_icmp_prohibited(const EthernetView& original, const Ipv4View& packet,
                                                         const IpAddress& from, const IpAddress& to);

// An Ethernet/IPv4/UDP frame (UDP checksum 0: none, allowed by RFC 768 for IPv4).
[[nodiscard]] std::vector<uint8_t> build_udp_frame(const MacAddress& eth_source, const MacAddress& eth_destination,
                                                   const IpAddress& source, uint16_t source_port,
                                                   const IpAddress& destination, uint16_t destination_port,
                                                   Bytes data);

}  // namespace husk::net
