// The husk binary's subcommand table (cli/main.cpp): a subcommand named
// first is the only one registered, so every other path must still see all
// of them (the overview, a misspelt or missing name, --version), and a named
// one must still give its own help and errors.
#include <string>

#include <catch2/catch.hpp>

#include "tests/support/subprocess.h"

namespace {
const std::string kHusk = HUSK_BIN;
}

TEST_CASE("husk --help lists every subcommand", "[kvm][cli]") {
  const auto help = husk::test::run_process({kHusk, "--help"}, 30);
  REQUIRE(help.exit_code == 0);
  for (const char* name : {"boot", "doctor", "exec", "run", "seccomp", "serve", "snapshot", "validate"}) {
    INFO("subcommand " << name);
    CHECK(help.out.find(std::string("  ") + name + " ") != std::string::npos);
  }
}

TEST_CASE("husk with an unknown or missing subcommand is a usage error", "[kvm][cli]") {
  const auto typo = husk::test::run_process({kHusk, "bot", "--kernel", "x"}, 30);
  CHECK(typo.exit_code == 2);
  CHECK(typo.err.find("A subcommand is required") != std::string::npos);
  const auto none = husk::test::run_process({kHusk}, 30);
  CHECK(none.exit_code == 2);
  const auto version = husk::test::run_process({kHusk, "--version"}, 30);
  CHECK(version.exit_code == 0);
  CHECK(version.out.rfind("husk ", 0) == 0);
}

TEST_CASE("a subcommand's own help and errors are its own", "[kvm][cli]") {
  const auto help = husk::test::run_process({kHusk, "validate", "--help"}, 30);
  REQUIRE(help.exit_code == 0);
  CHECK(help.out.find("validate") != std::string::npos);
  CHECK(help.out.find("Check job files") != std::string::npos);
  const auto unknown = husk::test::run_process({kHusk, "boot", "--kernel", "/nonexistent", "--no-such-flag"}, 30);
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("--no-such-flag") != std::string::npos);
}
