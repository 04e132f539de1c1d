#include "runtime/net/frame.h"

#include <algorithm>

namespace husk::net {

namespace {

// Reads two bytes of a frame; every caller checked that b holds at + 2 bytes.
uint16_t be16(Bytes b, size_t at) { return static_cast<uint16_t>((b[at] << 8) | b[at + 1]); }

void put16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v);
}

// Copies 6 bytes of a frame: every caller checked that b holds at + 6 bytes.
MacAddress mac_at(Bytes b, size_t at) {
  MacAddress m{};
  std::copy_n(b.begin() + static_cast<ptrdiff_t>(at), m.size(), m.begin());
  return m;
}

// subspan().first<4>() checks the bounds again (it would abort, not overrun);
// every caller checked that b holds at + 4 bytes.
IpAddress v4_at(Bytes b, size_t at) { return IpAddress::v4_bytes(b.subspan(at).first<4>()); }

// An IPv4 header without options: version 4, IHL 5, TTL 64, checksum filled in.
void put_ipv4_header(std::vector<uint8_t>& out, size_t at, uint8_t protocol, const IpAddress& source,
                     const IpAddress& destination, size_t total_length) {
  out[at] = 0x45;
  put16(out, at + 2, static_cast<uint16_t>(total_length));
  out[at + 8] = 64;
  out[at + 9] = protocol;
  std::copy_n(source.bytes.begin(), 4, out.begin() + static_cast<ptrdiff_t>(at + 12));
  std::copy_n(destination.bytes.begin(), 4, out.begin() + static_cast<ptrdiff_t>(at + 16));
  put16(out, at + 10, internet_checksum(Bytes(out).subspan(at, kIpv4MinHeaderSize)));
}

void put_ethernet_header(std::vector<uint8_t>& out, const MacAddress& destination, const MacAddress& source) {
  std::copy(destination.begin(), destination.end(), out.begin());
  std::copy(source.begin(), source.end(), out.begin() + 6);
  put16(out, 12, kEtherTypeIpv4);
}

}  // namespace

std::optional<EthernetView> parse_ethernet(Bytes frame) {
  if (frame.size() < kEthernetHeaderSize) return std::nullopt;
  EthernetView e;
  e.destination = mac_at(frame, 0);
  e.source = mac_at(frame, 6);
  e.ethertype = be16(frame, 12);
  e.payload = frame.subspan(kEthernetHeaderSize);
  return e;
}

std::optional<ArpView> parse_arp(Bytes p) {
  constexpr size_t kArpSize = 28;
  if (p.size() < kArpSize || be16(p, 0) != 1 || be16(p, 2) != kEtherTypeIpv4 || p[4] != 6 || p[5] != 4) {
    return std::nullopt;
  }
  ArpView a;
  a.operation = be16(p, 6);
  a.sender_mac = mac_at(p, 8);
  a.sender_ip = v4_at(p, 14);
  a.target_ip = v4_at(p, 24);
  return a;
}

std::optional<Ipv4View> parse_ipv4(Bytes p) {
  if (p.size() < kIpv4MinHeaderSize || (p[0] >> 4) != 4) return std::nullopt;
  const size_t header = size_t{p[0] & 0x0fu} * 4;
  const size_t total = be16(p, 2);
  // The total length may be shorter than the payload (Ethernet pads short
  // frames to 60 bytes) but never longer, and never shorter than the header.
  if (header < kIpv4MinHeaderSize || total < header || total > p.size()) return std::nullopt;
  Ipv4View v;
  v.protocol = p[9];
  v.source = v4_at(p, 12);
  v.destination = v4_at(p, 16);
  const uint16_t flags_offset = be16(p, 6);
  v.fragment = (flags_offset & 0x2000) != 0 || (flags_offset & 0x1fff) != 0;
  v.packet = p.first(total);
  v.payload = v.packet.subspan(header);
  return v;
}

std::optional<TransportView> parse_tcp(Bytes s) {
  if (s.size() < 20) return std::nullopt;
  const size_t offset = size_t{s[12]} / 16 * 4;
  if (offset < 20 || offset > s.size()) return std::nullopt;
  TransportView t;
  t.source_port = be16(s, 0);
  t.destination_port = be16(s, 2);
  t.tcp_flags = s[13];
  t.payload = s.subspan(offset);
  return t;
}

std::optional<TransportView> parse_udp(Bytes d) {
  if (d.size() < 8) return std::nullopt;
  const size_t length = be16(d, 4);
  if (length < 8 || length > d.size()) return std::nullopt;
  TransportView t;
  t.source_port = be16(d, 0);
  t.destination_port = be16(d, 2);
  t.payload = d.subspan(8, length - 8);
  return t;
}

std::optional<TransportView> parse_icmp(Bytes m) {
  if (m.size() < 8) return std::nullopt;
  TransportView t;
  t.icmp_type = m[0];
  t.icmp_code = m[1];
  t.icmp_id = be16(m, 4);
  t.payload = m.subspan(8);
  return t;
}

std::optional<QuotedPacket> parse_icmp_quote(Bytes q) {
  if (q.size() < kIpv4MinHeaderSize || (q[0] >> 4) != 4) return std::nullopt;
  const size_t header = size_t{q[0] & 0x0fu} * 4;
  if (header < kIpv4MinHeaderSize || header > q.size()) return std::nullopt;
  QuotedPacket p;
  p.protocol = q[9];
  p.source = v4_at(q, 12);
  p.destination = v4_at(q, 16);
  if (q.size() >= header + 4) {
    p.has_ports = true;
    p.source_port = be16(q, header);
    p.destination_port = be16(q, header + 2);
  }
  if (q.size() >= header + 8) p.icmp_id = be16(q, header + 4);
  return p;
}

uint16_t internet_checksum(Bytes data, uint32_t sum) {
  for (size_t i = 0; i + 1 < data.size(); i += 2) sum += be16(data, i);
  if (data.size() % 2 != 0) sum += uint32_t{data.back()} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

std::vector<uint8_t> build_icmp_prohibited(const EthernetView& original, const Ipv4View& packet,
                                           const IpAddress& from, const IpAddress& to) {
  // The quote: the header as sent (options included) and 8 bytes of payload,
  // or less when the packet was shorter; parse_ipv4 bounded both.
  const size_t header = packet.packet.size() - packet.payload.size();
  const size_t quote = header + std::min<size_t>(8, packet.payload.size());
  const size_t icmp_size = 8 + quote;
  std::vector<uint8_t> out(kEthernetHeaderSize + kIpv4MinHeaderSize + icmp_size, 0);
  put_ethernet_header(out, original.source, original.destination);
  put_ipv4_header(out, kEthernetHeaderSize, kIpProtoIcmp, from, to, kIpv4MinHeaderSize + icmp_size);
  const size_t icmp = kEthernetHeaderSize + kIpv4MinHeaderSize;
  out[icmp] = kIcmpDestUnreachable;
  out[icmp + 1] = kIcmpCodeAdminProhibited;
  // Guest bytes copied back to the guest: `quote` is within packet.packet
  // (header + at most the payload's size) and `out` was sized for it.
  std::copy_n(packet.packet.begin(), quote, out.begin() + static_cast<ptrdiff_t>(icmp + 8));
  put16(out, icmp + 2, internet_checksum(Bytes(out).subspan(icmp)));
  return out;
}

std::vector<uint8_t> build_udp_frame(const MacAddress& eth_source, const MacAddress& eth_destination,
                                     const IpAddress& source, uint16_t source_port, const IpAddress& destination,
                                     uint16_t destination_port, Bytes data) {
  const size_t udp_size = 8 + data.size();
  std::vector<uint8_t> out(kEthernetHeaderSize + kIpv4MinHeaderSize + udp_size, 0);
  put_ethernet_header(out, eth_destination, eth_source);
  put_ipv4_header(out, kEthernetHeaderSize, kIpProtoUdp, source, destination, kIpv4MinHeaderSize + udp_size);
  const size_t udp = kEthernetHeaderSize + kIpv4MinHeaderSize;
  put16(out, udp, source_port);
  put16(out, udp + 2, destination_port);
  put16(out, udp + 4, static_cast<uint16_t>(udp_size));
  // The data was measured into `out`'s size above. Callers keep it well under
  // 65507 bytes (a reply to a query that fit in one frame), so the 16-bit
  // lengths cannot wrap.
  std::copy(data.begin(), data.end(), out.begin() + static_cast<ptrdiff_t>(udp + 8));
  return out;
}

}  // namespace husk::net
