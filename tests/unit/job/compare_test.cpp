// The comparison modes of [[cases]] and the host's Watchdog.
#include <atomic>
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/job/compare.h"
#include "runtime/job/watchdog.h"

using husk::job::Compare;
using husk::job::outputs_match;

TEST_CASE("exact compares byte for byte", "[job]") {
  CHECK(outputs_match(Compare::kExact, "3\n", "3\n"));
  CHECK_FALSE(outputs_match(Compare::kExact, "3\n", "3"));
  CHECK_FALSE(outputs_match(Compare::kExact, "3\n", "3 \n"));
  CHECK_FALSE(outputs_match(Compare::kExact, "a\r\n", "a\n"));
}

TEST_CASE("trailing-whitespace ignores line ends and trailing empty lines, nothing else", "[job]") {
  CHECK(outputs_match(Compare::kTrailingWhitespace, "1 2\n3\n", "1 2   \n3\t\n\n\n"));
  CHECK(outputs_match(Compare::kTrailingWhitespace, "a\r\nb\r\n", "a\nb"));
  CHECK(outputs_match(Compare::kTrailingWhitespace, "", "\n \n"));
  CHECK_FALSE(outputs_match(Compare::kTrailingWhitespace, "1 2\n", "1  2\n"));
  CHECK_FALSE(outputs_match(Compare::kTrailingWhitespace, "a\nb\n", "a\n\nb\n"));
  CHECK_FALSE(outputs_match(Compare::kTrailingWhitespace, "a\n", " a\n"));
}

TEST_CASE("tokens compares whitespace-separated words", "[job]") {
  CHECK(outputs_match(Compare::kTokens, "1 2\n3\n", "1\n2 3"));
  CHECK(outputs_match(Compare::kTokens, "  x\t\ty  ", "x y"));
  CHECK_FALSE(outputs_match(Compare::kTokens, "1 2 3", "1 2"));
  CHECK_FALSE(outputs_match(Compare::kTokens, "12", "1 2"));
  CHECK_FALSE(outputs_match(Compare::kTokens, "3.0", "3"));
}

TEST_CASE("checker never matches on the host: it runs in the guest", "[job]") {
  CHECK_FALSE(outputs_match(Compare::kChecker, "x", "x"));
}

TEST_CASE("Watchdog fires once at its deadline unless disarmed first", "[job]") {
  using Clock = husk::job::Watchdog::Clock;
  std::atomic<int> fired{0};
  {
    auto dog = husk::job::Watchdog::start(Clock::now() + std::chrono::milliseconds(20), [&] { ++fired; });
    REQUIRE(dog);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK((*dog)->disarm());
  }
  CHECK(fired == 1);
  {
    auto dog = husk::job::Watchdog::start(Clock::now() + std::chrono::seconds(30), [&] { ++fired; });
    REQUIRE(dog);
    const auto before = Clock::now();
    CHECK_FALSE((*dog)->disarm());
    CHECK(Clock::now() - before < std::chrono::seconds(5));  // disarm does not wait for the deadline
  }
  CHECK(fired == 1);
}

TEST_CASE("a wrong answer says where the output first differs", "[job]") {
  using husk::job::first_difference;
  CHECK(first_difference(Compare::kTokens, "1 2 3", "1 2 4") == "token 3: expected \"3\", got \"4\"");
  CHECK(first_difference(Compare::kTokens, "1 2 3", "1 2") == "token 3: expected \"3\", got the end");
  CHECK(first_difference(Compare::kTrailingWhitespace, "a\nb\nc\n", "a\nb  \nd\n") == "line 3: expected \"c\", got \"d\"");
  CHECK(first_difference(Compare::kExact, "ab\ncd", "ab\nce") == "byte 4 (line 2): expected \"d\", got \"e\"");
  CHECK(first_difference(Compare::kExact, "ab", "ab\n") == "byte 2 (line 1): expected the end, got \"\n\"");
  CHECK(first_difference(Compare::kExact, std::string(100, 'x'), std::string(100, 'x')) == "no difference");
  const std::string long_token(100, 'y');
  CHECK(first_difference(Compare::kTokens, "x", long_token).size() < 80);
}
