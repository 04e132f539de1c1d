#include "runtime/net/dns_message.h"

#include <algorithm>

namespace husk::net {

namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxNameBytes = 255;  // RFC 1035 section 2.3.4, length octets included
constexpr int kMaxJumps = 16;
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kRcodeNxdomain = 3;

// Every caller checked that b holds at + 2 bytes.
uint16_t be16(Bytes b, size_t at) { return static_cast<uint16_t>((b[at] << 8) | b[at + 1]); }

char name_char(uint8_t c) {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') return static_cast<char>(c);
  return '?';
}

// Reads the name at `pos`; `end` is where the bytes after the name start in
// place (after the first pointer when it jumps). Compression pointers must
// point strictly backwards; jumps and length are capped, so this ends on any
// input.
bool read_name(Bytes m, size_t pos, bool allow_pointers, std::string& name, size_t& end) {
  name.clear();
  size_t cur = pos;
  size_t length = 0;
  int jumps = 0;
  bool jumped = false;
  while (true) {
    if (cur >= m.size()) return false;
    const uint8_t len = m[cur];
    if (len == 0) {
      if (!jumped) end = cur + 1;
      return true;
    }
    if ((len & 0xc0) == 0xc0) {
      if (!allow_pointers || cur + 1 >= m.size() || ++jumps > kMaxJumps) return false;
      const size_t target = (size_t{len & 0x3fu} << 8) | m[cur + 1];
      if (target >= cur || target < kHeaderSize) return false;
      if (!jumped) end = cur + 2;
      jumped = true;
      cur = target;
      continue;
    }
    if ((len & 0xc0) != 0) return false;  // 0x40 and 0x80: obsolete label types
    length += size_t{len} + 1;
    if (length + 1 > kMaxNameBytes || cur + 1 + len > m.size()) return false;
    if (!name.empty()) name += '.';
    // Label bytes from the message, each mapped through name_char (the loop
    // stays within cur + 1 + len, checked above).
    for (size_t i = cur + 1; i < cur + 1 + len; ++i) name += name_char(m[i]);
    cur += 1 + size_t{len};
  }
}

struct Record {
  std::string owner;
  uint16_t type = 0;
  std::string alias;        // CNAME target
  IpAddress address{};      // A or AAAA
};

bool read_question(Bytes m, bool allow_pointers, DnsQuestion& q, size_t& end) {
  size_t name_end = 0;
  if (!read_name(m, kHeaderSize, allow_pointers, q.name, name_end) || name_end + 4 > m.size()) return false;
  q.type = be16(m, name_end);
  q.klass = be16(m, name_end + 2);
  end = name_end + 4;
  return true;
}

// One resource record at `pos` (RFC 1035 section 4.1.3); false when it does
// not fit in the message.
bool read_record(Bytes m, size_t& pos, Record& r, bool& useful) {
  size_t after_name = 0;
  if (!read_name(m, pos, true, r.owner, after_name) || after_name + 10 > m.size()) return false;
  r.type = be16(m, after_name);
  const uint16_t klass = be16(m, after_name + 2);
  const size_t rdlength = be16(m, after_name + 8);
  const size_t rdata = after_name + 10;
  if (rdata + rdlength > m.size()) return false;
  pos = rdata + rdlength;
  useful = false;
  if (klass != 1) return true;  // only IN records carry addresses
  // Address bytes copied out of the answer: rdata + rdlength is inside the
  // message (checked above) and rdlength is exactly the address's size.
  if (r.type == kDnsTypeA && rdlength == 4) {
    r.address = IpAddress::v4_bytes(m.subspan(rdata).first<4>());
    useful = true;
  } else if (r.type == kDnsTypeAaaa && rdlength == 16) {
    r.address = IpAddress::v6_bytes(m.subspan(rdata).first<16>());
    useful = true;
  } else if (r.type == kDnsTypeCname) {
    size_t alias_end = 0;
    // The alias's own bytes must lie inside this record's data; its pointers
    // may reach back anywhere earlier in the message.
    if (!read_name(m, rdata, true, r.alias, alias_end) || alias_end > pos) return false;
    useful = true;
  }
  return true;
}

}  // namespace

std::optional<DnsQuery> parse_dns_query(Bytes m) {
  if (m.size() < kHeaderSize) return std::nullopt;
  DnsQuery q;
  q.id = be16(m, 0);
  q.flags = be16(m, 2);
  const bool standard_query = (q.flags & kFlagQr) == 0 && ((q.flags >> 11) & 0xf) == 0;
  if (!standard_query || be16(m, 4) != 1 || be16(m, 6) != 0 || be16(m, 8) != 0 || be16(m, 10) > 1) {
    return std::nullopt;
  }
  size_t end = 0;
  if (!read_question(m, false, q.question, end)) return std::nullopt;
  q.question_bytes = m.subspan(kHeaderSize, end - kHeaderSize);
  return q;
}

std::optional<DnsAnswer> parse_dns_answer(Bytes m) {
  if (m.size() < kHeaderSize) return std::nullopt;
  DnsAnswer a;
  a.id = be16(m, 0);
  a.flags = be16(m, 2);
  if ((a.flags & kFlagQr) == 0 || be16(m, 4) != 1) return std::nullopt;
  size_t pos = 0;
  if (!read_question(m, true, a.question, pos)) return std::nullopt;
  const size_t count = std::min<size_t>(be16(m, 6), kDnsMaxRecords);
  std::vector<Record> records;
  records.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Record r;
    bool useful = false;
    if (!read_record(m, pos, r, useful)) return std::nullopt;
    if (useful) records.push_back(std::move(r));
  }
  // Follow the aliases from the question's name: each round adds the targets
  // of CNAMEs owned by a name already reached, so depth is capped by rounds.
  std::vector<std::string> names{a.question.name};
  for (size_t round = 0; round < kDnsMaxCnameDepth; ++round) {
    const size_t before = names.size();
    for (const Record& r : records) {
      if (r.type != kDnsTypeCname) continue;
      const bool owner_reached = std::find(names.begin(), names.begin() + static_cast<ptrdiff_t>(before), r.owner) !=
                                 names.begin() + static_cast<ptrdiff_t>(before);
      if (owner_reached && std::find(names.begin(), names.end(), r.alias) == names.end()) names.push_back(r.alias);
    }
    if (names.size() == before) break;
  }
  for (const Record& r : records) {
    if (r.type == kDnsTypeCname) continue;
    if (std::find(names.begin(), names.end(), r.owner) != names.end()) a.addresses.push_back(r.address);
  }
  return a;
}

std::vector<uint8_t> build_nxdomain(const DnsQuery& query) {
  // Reserved whole first: growing it by the insert below made GCC 12 -O2
  // warn (-Warray-bounds, a false positive on the reallocation path).
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + query.question_bytes.size());
  out.resize(kHeaderSize, 0);
  const uint16_t flags = kFlagQr | (query.flags & kFlagRd) | kFlagRa | kRcodeNxdomain;
  out[0] = static_cast<uint8_t>(query.id >> 8);
  out[1] = static_cast<uint8_t>(query.id);
  out[2] = static_cast<uint8_t>(flags >> 8);
  out[3] = static_cast<uint8_t>(flags);
  out[5] = 1;  // QDCOUNT
  // The question as the guest sent it, already bounded by parse_dns_query
  // (a name of at most 255 bytes, type and class).
  out.insert(out.end(), query.question_bytes.begin(), query.question_bytes.end());
  return out;
}

}  // namespace husk::net
