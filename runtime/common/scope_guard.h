// ScopeGuard: runs a callable when the scope ends unless dismissed. Used for
// clean-up on early-return paths where a dedicated RAII type would be overkill.
#pragma once

#include <utility>

namespace husk {

template <typename F>
class ScopeGuard {
 public:
  explicit ScopeGuard(F f) : f_(std::move(f)) {}
  ~ScopeGuard() {
    if (active_) f_();
  }
  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  void dismiss() { active_ = false; }

 private:
  F f_;
  bool active_ = true;
};

}  // namespace husk
