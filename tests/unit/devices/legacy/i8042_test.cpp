#include "runtime/devices/legacy/i8042.h"

#include <catch2/catch.hpp>

using husk::devices::I8042;

TEST_CASE("i8042: status says ready and 0xFE resets", "[unit]") {
  int resets = 0;
  I8042 dev([&] { ++resets; });
  uint8_t status = 0xff;
  dev.read(I8042::kCommandPort - I8042::kDataPort, std::span(&status, 1));
  CHECK(status == 0);  // input buffer empty: kb_wait() returns at once
  const uint8_t other = 0xd1;
  dev.write(I8042::kCommandPort - I8042::kDataPort, std::span(&other, 1));
  CHECK(resets == 0);
  const uint8_t fe = I8042::kCmdResetCpu;
  dev.write(0, std::span(&fe, 1));  // 0xFE on the data port is not a command
  CHECK(resets == 0);
  dev.write(I8042::kCommandPort - I8042::kDataPort, std::span(&fe, 1));
  CHECK(resets == 1);
}
