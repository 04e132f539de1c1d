#include "runtime/arch/x86_64/mptable.h"

#include <cstring>
#include <numeric>

#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/mptable_structs.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using namespace husk::x86_64::test;

uint8_t byte_sum(std::span<const uint8_t> bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), uint8_t{0},
                         [](uint8_t a, uint8_t b) { return uint8_t(a + b); });
}

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
  std::vector<uint8_t> out(size);
  REQUIRE(memory.read(gpa, out));
  return out;
}

// What a guest finds when it parses the tables the way mpparse.c does.
struct ParsedTable {
  std::vector<mp::Processor> cpus;
  std::vector<mp::Ioapic> ioapics;
  std::vector<mp::Interrupt> io_interrupts;
  std::vector<mp::Interrupt> local_interrupts;
  size_t buses = 0;
  uint16_t entry_count = 0;
};

ParsedTable parse(const GuestMemory& memory) {
  const std::vector<uint8_t> fp_bytes = read_guest(memory, kEbdaStart, sizeof(mp::FloatingPointer));
  CHECK(byte_sum(fp_bytes) == 0);
  const auto fp = peek<mp::FloatingPointer>(fp_bytes, 0);
  CHECK(std::memcmp(fp.signature, "_MP_", 4) == 0);
  CHECK(uint32_t{fp.length} == 1);
  CHECK(uint32_t{fp.specification} == 4);
  CHECK(uint32_t{fp.feature1} == 0);

  const auto header = peek<mp::ConfigHeader>(
      read_guest(memory, fp.physptr, sizeof(mp::ConfigHeader)), 0);
  CHECK(std::memcmp(header.signature, "PCMP", 4) == 0);
  CHECK(uint64_t{header.lapic} == kLapicAddr);
  const std::vector<uint8_t> table = read_guest(memory, fp.physptr, header.length);
  CHECK(byte_sum(table) == 0);
  // The whole table stays in the EBDA that e820 reserves.
  CHECK(fp.physptr + header.length <= kLowMemEnd);

  ParsedTable parsed;
  parsed.entry_count = header.oemcount;
  size_t offset = sizeof(mp::ConfigHeader);
  while (offset < table.size()) {
    switch (table[offset]) {
      case mp::kProcessor:
        parsed.cpus.push_back(peek<mp::Processor>(table, offset));
        offset += sizeof(mp::Processor);
        break;
      case mp::kBus:
        ++parsed.buses;
        offset += sizeof(mp::Bus);
        break;
      case mp::kIoapic:
        parsed.ioapics.push_back(peek<mp::Ioapic>(table, offset));
        offset += sizeof(mp::Ioapic);
        break;
      case mp::kIoInterrupt:
        parsed.io_interrupts.push_back(peek<mp::Interrupt>(table, offset));
        offset += sizeof(mp::Interrupt);
        break;
      case mp::kLocalInterrupt:
        parsed.local_interrupts.push_back(peek<mp::Interrupt>(table, offset));
        offset += sizeof(mp::Interrupt);
        break;
      default:
        FAIL("unknown MP entry type " << int(table[offset]));
    }
  }
  CHECK(offset == table.size());
  return parsed;
}

TEST_CASE("write_mptable describes every vCPU and the IOAPIC", "[arch][mptable]") {
  const uint32_t count = GENERATE(1u, 2u, 32u);
  GuestMemory memory = make_memory();
  REQUIRE(write_mptable(memory, count));

  const ParsedTable t = parse(memory);
  REQUIRE(t.cpus.size() == count);
  for (uint32_t i = 0; i < count; ++i) {
    CHECK(uint32_t{t.cpus[i].apicid} == i);
    CHECK((t.cpus[i].cpuflag & mp::kCpuEnabled) != 0);
    CHECK(((t.cpus[i].cpuflag & mp::kCpuBootProcessor) != 0) == (i == 0));
  }
  CHECK(t.buses == 1);
  REQUIRE(t.ioapics.size() == 1);
  CHECK(uint32_t{t.ioapics[0].apicid} == count);
  CHECK(uint64_t{t.ioapics[0].apicaddr} == kIoapicAddr);
  CHECK((t.ioapics[0].flags & mp::kIoapicEnabled) != 0);

  REQUIRE(t.io_interrupts.size() == kIoapicPins);
  for (uint32_t pin = 0; pin < kIoapicPins; ++pin) {
    CHECK(uint32_t{t.io_interrupts[pin].irqtype} == mp::kIntVectored);
    CHECK(uint32_t{t.io_interrupts[pin].srcbusirq} == pin);
    CHECK(uint32_t{t.io_interrupts[pin].dstapic} == count);
    CHECK(uint32_t{t.io_interrupts[pin].dstirq} == pin);
  }
  REQUIRE(t.local_interrupts.size() == 2);
  CHECK(uint32_t{t.local_interrupts[0].irqtype} == mp::kIntExtInt);
  CHECK(uint32_t{t.local_interrupts[0].dstirq} == 0);
  CHECK(uint32_t{t.local_interrupts[1].irqtype} == mp::kIntNmi);
  CHECK(uint32_t{t.local_interrupts[1].dstapic} == mp::kAllLocalApics);
  CHECK(uint32_t{t.local_interrupts[1].dstirq} == 1);

  CHECK(t.entry_count == count + 1 + 1 + kIoapicPins + 2);
}

TEST_CASE("write_mptable refuses 0 and more than kMaxVcpus vCPUs", "[arch][mptable]") {
  GuestMemory memory = make_memory();
  CHECK_FALSE(write_mptable(memory, 0));
  auto result = write_mptable(memory, kMaxVcpus + 1);
  REQUIRE_FALSE(result);
  CHECK_THAT(result.error().message, Catch::Matchers::Contains("33 vCPUs"));
}

}  // namespace
}  // namespace husk::x86_64
