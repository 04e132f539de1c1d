// StopState: the one place that decides why the VM stops. Any thread may
// request a stop; the first request wins and later ones are ignored, so a
// reset followed by vCPUs failing on their way out is reported as a reset.
// Waiters block on a condition variable or poll an eventfd.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/vmm/exit_reason.h"

namespace husk::vmm {

class StopState {
 public:
  static Result<std::unique_ptr<StopState>> create();

  // Returns true when this request was the first.
  bool request(VmExit exit);
  [[nodiscard]] bool stopped() const;
  [[nodiscard]] std::optional<VmExit> exit() const;
  // Readable once a stop was requested.
  [[nodiscard]] int eventfd() const { return eventfd_.get(); }

 private:
  explicit StopState(UniqueFd fd) : eventfd_(std::move(fd)) {}
  mutable std::mutex mutex_;
  std::optional<VmExit> exit_;
  UniqueFd eventfd_;
};

}  // namespace husk::vmm
