// A container's terminal (process.terminal): a pseudo-terminal on the
// host whose master goes to the caller through --console-socket (runc's
// scheme: one SCM_RIGHTS message whose data is the terminal's name) and
// whose slave is the keeper's side. The slave is put in raw mode: the
// line discipline that matters (echo, ^C, the size) is the guest's own
// pseudo-terminal, which the agent gives the process; the host's passes
// bytes through both ways.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::oci {

struct Console {
  UniqueFd master;
  UniqueFd slave;
  std::string name;  // /dev/pts/N
};

// A new pseudo-terminal of `rows` x `cols` (0: 24 x 80), its slave raw.
[[nodiscard]] Result<Console> open_console(uint16_t rows, uint16_t cols);

// Sends `master` over the Unix stream socket at `socket_path`.
[[nodiscard]] Result<void> send_console(const std::string& socket_path, int master, const std::string& name);

// The terminal's size; {0, 0} when `fd` is not a terminal.
struct TermSize {
  uint16_t rows = 0;
  uint16_t cols = 0;
};
[[nodiscard]] TermSize terminal_size(int fd);

}  // namespace husk::oci
