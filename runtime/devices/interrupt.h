// InterruptLine: how a device raises its interrupt. The real one is an
// eventfd wired to a GSI with KVM_IRQFD, so raising it never leaves the
// calling thread waiting on a vCPU. Unit tests count triggers instead.
#pragma once

#include <cstdint>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::devices {

class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  // An edge: the guest sees one interrupt per trigger (or coalesced ones).
  virtual void trigger() = 0;
};

class EventFdInterrupt final : public InterruptLine {
 public:
  static Result<EventFdInterrupt> create();
  void trigger() override;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit EventFdInterrupt(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace husk::devices
