#include "services/time/deadline_timer.h"

#include <utility>

namespace hips {
namespace {

class SystemClockImpl final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  std::unique_ptr<Timer> NewTimer(std::function<absl::Time()> next_deadline,
                                  std::function<void(absl::Time)> on_due) override {
    return std::make_unique<DeadlineTimer>(std::move(next_deadline), std::move(on_due));
  }
};

}  // namespace

Clock* SystemClock() {
  static Clock* clock = new SystemClockImpl();
  return clock;
}

DeadlineTimer::DeadlineTimer(std::function<absl::Time()> next_deadline,
                             std::function<void(absl::Time)> on_due)
    : next_deadline_(std::move(next_deadline)), on_due_(std::move(on_due)) {
  thread_ = std::thread([this] { Loop(); });
}

DeadlineTimer::~DeadlineTimer() { Stop(); }

void DeadlineTimer::Poke() {
  absl::MutexLock lock(&mu_);
  poked_ = true;
}

void DeadlineTimer::Stop() {
  std::call_once(stop_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  });
}

void DeadlineTimer::Loop() {
  while (true) {
    // Read the deadline first: a Poke after this read is seen by the wait.
    const absl::Time deadline = next_deadline_();
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || poked_; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
      if (stop_) return;
      if (poked_) {
        poked_ = false;
        continue;
      }
    }
    on_due_(absl::Now());
  }
}

}  // namespace hips
