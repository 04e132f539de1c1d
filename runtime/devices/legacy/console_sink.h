// ConsoleSink: where the guest's serial console goes (a host fd: stdout or a
// file). It also watches the text line by line for a kernel panic, so that a
// guest which panics and then resets (panic=-1) is reported as a failure
// quoting the panic line instead of as a clean reset.
//
// The guest writes a byte at a time; the sink buffers and writes whole lines
// (or 4 KiB), and the machine's control thread flushes a partial line (a
// shell prompt) within 100 ms. The guest is hostile: past `limit` bytes the
// sink writes one marker line and drops the rest (it still watches for a
// panic), so a program in the guest cannot fill the host's disk.
// A reader that is slower than the guest (`husk boot | less`) slows the
// guest down: once kBacklog bytes wait, the writing vCPU waits for the fd,
// in 100 ms slices. abandon() ends every such wait (the VM is stopping):
// what cannot be written at once from then on is dropped, so a console pipe
// nobody reads cannot hold a stopping husk.
#pragma once

#include <atomic>
#include <mutex>
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/common/unique_fd.h"

namespace husk::devices {

class ConsoleSink {
 public:
  // Does not take ownership of `fd` unless `owned` holds it.
  static constexpr uint64_t kDefaultLimit = 64ull << 20;

  explicit ConsoleSink(int fd, UniqueFd owned = UniqueFd(), uint64_t limit = kDefaultLimit)
      : fd_(fd), owned_(std::move(owned)), limit_(limit) {}
  ~ConsoleSink();
  ConsoleSink(const ConsoleSink&) = delete;
  ConsoleSink& operator=(const ConsoleSink&) = delete;

  static constexpr size_t kBacklog = 64 * 1024;

  void write(const uint8_t* data, size_t len);
  // Writes out what is buffered (a line without its newline yet), waiting
  // for the fd at most `wait_ms` in all; what is left stays buffered.
  void flush(int wait_ms = 1000);
  // The same without waiting for the lock either: for the control thread,
  // which must stay free to see a stop.
  void try_flush();
  // The VM is stopping: no write waits for the fd any more.
  void abandon() { abandoned_ = true; }

  // The first "Kernel panic" line the guest printed, if any.
  [[nodiscard]] std::optional<std::string> panic_line() const;

 private:
  void scan(uint8_t byte);
  // Writes what the fd takes without blocking; with `wait_ms` > 0 waits for
  // it up to that long in all.
  void drain_locked(int wait_ms);

  int fd_;
  UniqueFd owned_;
  uint64_t limit_;
  uint64_t accepted_ = 0;  // bytes taken for output (buffered or written)
  bool capped_ = false;
  std::string pending_;
  std::atomic<bool> abandoned_{false};
  mutable std::mutex mutex_;
  std::string line_;
  std::optional<std::string> panic_line_;
};

}  // namespace husk::devices
