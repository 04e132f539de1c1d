// libFuzzer target for the DNS parser of the packet filter
// (runtime/net/dns_message.h): queries come from a hostile guest, answers
// from the outside world. The whole input is one DNS message, parsed both
// as a query and as an answer.
//
// Checked, besides no crash, leak or UB: names hold only a-z, 0-9, '-',
// '_', '?' and '.', at most 253 characters; a parsed query's question lies
// inside the message; the NXDOMAIN reply to a parsed query parses as an
// answer with the same id and name, RCODE 3 and no addresses; an answer has
// at most kDnsMaxRecords addresses.
#include <cstdint>
#include <string_view>

#include "runtime/net/dns_message.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void check_name(std::string_view name) {
  FUZZ_CHECK(name.size() <= 253);
  for (char c : name) {
    FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '?' || c == '.');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace husk::net;
  const Bytes message(data, size);
  if (const auto query = parse_dns_query(message)) {
    check_name(query->question.name);
    FUZZ_CHECK(query->question_bytes.data() == data + 12);
    FUZZ_CHECK(query->question_bytes.size() + 12 <= size);
    const auto reply = build_nxdomain(*query);
    const auto answer = parse_dns_answer(reply);
    FUZZ_CHECK(answer && answer->id == query->id && answer->question.name == query->question.name);
    FUZZ_CHECK((answer->flags & 0x000f) == 3 && answer->addresses.empty());
    FUZZ_CHECK(answer->question.type == query->question.type && answer->question.klass == query->question.klass);
  }
  if (const auto answer = parse_dns_answer(message)) {
    check_name(answer->question.name);
    FUZZ_CHECK(answer->addresses.size() <= kDnsMaxRecords);
  }
  return 0;
}
