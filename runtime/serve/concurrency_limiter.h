// ConcurrencyLimiter: at most `limit` requests of `husk serve` run at
// once (--max-concurrent). A request over the limit is not queued: it gets
// 503 at once (a queue would only hide the overload from the client and
// from whatever balances load in front). A Slot is held for the whole of
// one request and gives its place back when it goes.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <utility>

namespace husk::serve {

class ConcurrencyLimiter {
 public:
  class Slot {
   public:
    Slot(Slot&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() {
      if (owner_ != nullptr) owner_->release();
    }

   private:
    friend class ConcurrencyLimiter;
    explicit Slot(ConcurrencyLimiter* owner) : owner_(owner) {}
    ConcurrencyLimiter* owner_;
  };

  explicit ConcurrencyLimiter(size_t limit) : limit_(limit) {}

  // A place, or none when `limit` requests hold one already.
  [[nodiscard]] std::optional<Slot> try_acquire() {
    std::lock_guard lock(mutex_);
    if (in_flight_ >= limit_) return std::nullopt;
    ++in_flight_;
    return Slot(this);
  }

  [[nodiscard]] size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_;
  }
  [[nodiscard]] size_t limit() const { return limit_; }

 private:
  void release() {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }

  const size_t limit_;
  mutable std::mutex mutex_;
  size_t in_flight_ = 0;
};

}  // namespace husk::serve
