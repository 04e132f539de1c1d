// The little of DNS (RFC 1035 section 4.1) the packet filter reads: the
// question of a guest's query, the A, AAAA and CNAME records of an answer,
// and the NXDOMAIN reply it gives for a name the policy refuses. Both sides
// are untrusted (the guest writes queries; answers come from the outside
// world), so every length and offset is checked against the message, and
// the work per message has fixed caps: 255 bytes and 16 compression jumps a
// name, 64 records, CNAME chains of 8.
//
// Names come back lower case without a trailing dot ("" is the root). A
// character other than a-z, 0-9, '-' and '_' (a '.' inside a label, a NUL,
// a control character) reads as '?', so such a name can never match an
// allow rule and is safe to print.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/net/frame.h"
#include "runtime/net/ip_address.h"

namespace husk::net {

inline constexpr uint16_t kDnsPort = 53;
inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeCname = 5;
inline constexpr uint16_t kDnsTypeAaaa = 28;
inline constexpr size_t kDnsMaxRecords = 64;
inline constexpr size_t kDnsMaxCnameDepth = 8;

struct DnsQuestion {
  std::string name;
  uint16_t type = 0;
  uint16_t klass = 0;
};

struct DnsQuery {
  uint16_t id = 0;
  uint16_t flags = 0;
  DnsQuestion question{};
  Bytes question_bytes{};  // the question as sent (name, type, class), to copy into a reply
};

struct DnsAnswer {
  uint16_t id = 0;
  uint16_t flags = 0;
  DnsQuestion question{};
  // Addresses of A and AAAA records owned by the question's name or by a name
  // it aliases through CNAME records (followed at most kDnsMaxCnameDepth deep).
  std::vector<IpAddress> addresses;
};

// A standard query (QR 0, opcode 0) with exactly one question, no answer or
// authority records and at most one additional (EDNS OPT) record. The
// question's name must not use compression (nothing precedes it to point to).
[[nodiscard]] std::optional<DnsQuery> parse_dns_query(Bytes message);

// A response (QR 1) with exactly one question. nullopt when anything in the
// header, the question or the first kDnsMaxRecords answer records is out of
// bounds; records past that cap are ignored.
[[nodiscard]] std::optional<DnsAnswer> parse_dns_answer(Bytes message);

// The reply for a refused query: same id, QR 1, RD copied, RA 1, RCODE 3
// (NXDOMAIN), the question copied, no records.
[[nodiscard]] std::vector<uint8_t> build_nxdomain(const DnsQuery& query);

}  // namespace husk::net
