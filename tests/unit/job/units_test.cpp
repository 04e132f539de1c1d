// Tests for runtime/job/units.h: the duration, size and signal strings of
// job files (docs/job-file.md, "Units"), good and bad, with their messages.
#include "runtime/job/units.h"

#include <signal.h>

#include <string>

#include <catch2/catch.hpp>

namespace husk::job {
namespace {

using Catch::Matchers::Contains;
using std::chrono::milliseconds;

std::string duration_error(std::string_view text) {
  auto d = parse_duration(text);
  REQUIRE_FALSE(d);
  return d.error().message;
}

std::string size_error(std::string_view text) {
  auto s = parse_size(text);
  REQUIRE_FALSE(s);
  return s.error().message;
}

std::string signal_error(std::string_view text) {
  auto s = parse_signal(text);
  REQUIRE_FALSE(s);
  return s.error().message;
}

TEST_CASE("durations take ms, s, m and h, with fractions", "[job][units]") {
  CHECK(parse_duration("250ms") == milliseconds(250));
  CHECK(parse_duration("10s") == milliseconds(10'000));
  CHECK(parse_duration("1.5m") == milliseconds(90'000));
  CHECK(parse_duration("2h") == milliseconds(7'200'000));
  CHECK(parse_duration("0.5s") == milliseconds(500));
  CHECK(parse_duration("24h") == milliseconds(86'400'000));
  CHECK(parse_duration("0s") == milliseconds(0));  // the range (more than 0) is the job's check
}

TEST_CASE("a duration without a unit is refused, with an example", "[job][units]") {
  const std::string e = duration_error("10");
  CHECK_THAT(e, Contains("expected a duration such as \"10s\""));
  CHECK_THAT(e, Contains("got \"10\""));
  CHECK_THAT(e, Contains("unit"));
}

TEST_CASE("malformed durations are refused and quoted", "[job][units]") {
  for (const char* bad : {"", "s", "ten seconds", "-1s", "10x", "10 parsecs", "1.5.2s", ".5s", "5.s", "1e3s",
                          "10S", "s10", "0x10s"}) {
    INFO(bad);
    const std::string e = duration_error(bad);
    CHECK_THAT(e, Contains("expected a duration"));
    CHECK_THAT(e, Contains(std::string("\"") + bad + "\""));
  }
}

TEST_CASE("durations too large to count in milliseconds are refused", "[job][units]") {
  CHECK_THAT(duration_error("99999999999999999999h"), Contains("too large"));
  CHECK_THAT(duration_error("1000000000000000000000000000000000000ms"), Contains("expected a duration"));
}

TEST_CASE("sizes take binary and decimal units", "[job][units]") {
  CHECK(parse_size("4096B") == 4096u);
  CHECK(parse_size("512KiB") == 512u * 1024);
  CHECK(parse_size("256MiB") == 256ull << 20);
  CHECK(parse_size("1.5GiB") == 3ull << 29);
  CHECK(parse_size("1kB") == 1000u);
  CHECK(parse_size("100MB") == 100'000'000u);
  CHECK(parse_size("2GB") == 2'000'000'000u);
  CHECK(parse_size("0.5KiB") == 512u);
}

TEST_CASE("a size without a unit is refused, with an example", "[job][units]") {
  const std::string e = size_error("256");
  CHECK_THAT(e, Contains("expected a size such as \"256MiB\""));
  CHECK_THAT(e, Contains("got \"256\""));
  CHECK_THAT(e, Contains("unit"));
}

TEST_CASE("malformed sizes are refused and quoted", "[job][units]") {
  for (const char* bad : {"", "MiB", "-1MiB", "256XB", "256 mebibytes", "1.5.5MiB", "16EiB", "1e6B", "lots"}) {
    INFO(bad);
    const std::string e = size_error(bad);
    CHECK_THAT(e, Contains("expected a size"));
    CHECK_THAT(e, Contains(std::string("\"") + bad + "\""));
  }
}

TEST_CASE("a fractional byte count is refused", "[job][units]") {
  CHECK_THAT(size_error("1.5B"), Contains("expected a size"));
}

TEST_CASE("sizes past 64 bits are refused, not wrapped", "[job][units]") {
  CHECK_THAT(size_error("20000000000GiB"), Contains("too large"));
  CHECK_THAT(size_error("18446744073709551616B"), Contains("too large"));
  CHECK(parse_size("16777215TiB") == 16777215ull << 40);  // just below 2^64
  CHECK(parse_size("10000000TB") == 10'000'000'000'000'000'000ull);  // past 2^63
}

TEST_CASE("signals by name, short name or number", "[job][units]") {
  CHECK(parse_signal("SIGTERM") == SIGTERM);
  CHECK(parse_signal("TERM") == SIGTERM);
  CHECK(parse_signal("15") == SIGTERM);
  CHECK(parse_signal("SIGKILL") == SIGKILL);
  CHECK(parse_signal("KILL") == SIGKILL);
  CHECK(parse_signal("INT") == SIGINT);
  CHECK(parse_signal("SIGUSR1") == SIGUSR1);
  CHECK(parse_signal("9") == SIGKILL);
}

TEST_CASE("unknown signals and numbers out of range are refused", "[job][units]") {
  for (const char* bad : {"", "SIG", "SIGNOPE", "NOPE", "SIG TERM", "15s"}) {
    INFO(bad);
    CHECK_THAT(signal_error(bad), Contains("expected a signal such as \"SIGTERM\""));
  }
  for (const char* bad : {"0", "-1", "65", "99999999999"}) {
    INFO(bad);
    CHECK_THAT(signal_error(bad), Contains("expected a signal"));
  }
}

TEST_CASE("durations and sizes print for people", "[job][units]") {
  CHECK(format_duration(milliseconds(250)) == "250 ms");
  CHECK(format_duration(milliseconds(1500)) == "1.5 s");
  CHECK(format_duration(milliseconds(600'000)) == "10 min");
  CHECK(format_size(512) == "512 B");
  CHECK(format_size(1536) == "1.5 KiB");
  CHECK(format_size(256ull << 20) == "256 MiB");
  CHECK(format_size(3ull << 29) == "1.5 GiB");
}

}  // namespace
}  // namespace husk::job
