// The one Catch2 main shared by every test binary. Logs go to stderr, as
// husk's own (cli/main.cpp): spdlog's default sink is stdout, whose first
// write makes glibc fstat(1) to size its buffer, a call that the seccomp
// filters of husk's device threads refuse (they log, and husk's stderr is
// unbuffered).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

int main(int argc, char* argv[]) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("husk"));
  return Catch::Session().run(argc, argv);
}
