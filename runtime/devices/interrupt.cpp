#include "runtime/devices/interrupt.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace husk::devices {

Result<EventFdInterrupt> EventFdInterrupt::create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return fail_errno("eventfd for an interrupt line");
  return EventFdInterrupt(std::move(fd));
}

void EventFdInterrupt::trigger() {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: an interrupt is pending already.
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof(one));
}

}  // namespace husk::devices
