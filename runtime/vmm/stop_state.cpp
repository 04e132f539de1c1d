#include "runtime/vmm/stop_state.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace husk::vmm {

Result<std::unique_ptr<StopState>> StopState::create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return fail_errno("eventfd for VM stop");
  return std::unique_ptr<StopState>(new StopState(std::move(fd)));
}

bool StopState::request(VmExit exit) {
  {
    std::lock_guard lock(mutex_);
    if (exit_) return false;
    exit_ = std::move(exit);
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(eventfd_.get(), &one, sizeof(one));
  return true;
}

bool StopState::stopped() const {
  std::lock_guard lock(mutex_);
  return exit_.has_value();
}

std::optional<VmExit> StopState::exit() const {
  std::lock_guard lock(mutex_);
  return exit_;
}

}  // namespace husk::vmm
