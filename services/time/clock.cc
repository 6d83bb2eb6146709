#include "services/time/clock.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"

namespace hips {
namespace {

// A timer that stays due after it fired this often at one time is a bug of
// its owner (its deadline does not move); the clock goes on regardless.
constexpr int kMaxFiringsPerAdvance = 1000;

}  // namespace

class SimulatedClock::SimulatedTimer {
 public:
  SimulatedTimer(std::function<absl::Time()> next_deadline, std::function<void(absl::Time)> on_due)
      : next_deadline_(std::move(next_deadline)), on_due_(std::move(on_due)) {}

  void FireIfDue(absl::Time now) {
    absl::MutexLock lock(&mu_);
    for (int i = 0; !stopped_ && next_deadline_() <= now; ++i) {
      if (i == kMaxFiringsPerAdvance) {
        LOG(ERROR) << "a simulated timer stays due at " << now << " after " << i << " firings";
        return;
      }
      on_due_(now);
    }
  }

  // Waits for a firing in progress.
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }

 private:
  const std::function<absl::Time()> next_deadline_;
  const std::function<void(absl::Time)> on_due_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

// What SimulatedClock::NewTimer hands out: stopping it takes the timer off
// the clock.
class SimulatedTimerHandle final : public Timer {
 public:
  SimulatedTimerHandle(std::function<void()> stop) : stop_(std::move(stop)) {}
  ~SimulatedTimerHandle() override { Stop(); }
  void Poke() override {}  // deadlines are read at every advance
  void Stop() override {
    if (stop_) std::exchange(stop_, nullptr)();
  }

 private:
  std::function<void()> stop_;
};

}  // namespace

SimulatedClock::SimulatedClock(absl::Time start) : now_(start) {}

SimulatedClock::~SimulatedClock() = default;

absl::Time SimulatedClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

std::unique_ptr<Timer> SimulatedClock::NewTimer(std::function<absl::Time()> next_deadline,
                                                std::function<void(absl::Time)> on_due) {
  auto timer = std::make_shared<SimulatedTimer>(std::move(next_deadline), std::move(on_due));
  {
    absl::MutexLock lock(&mu_);
    timers_.push_back(timer);
  }
  return std::make_unique<SimulatedTimerHandle>([this, timer] {
    timer->Stop();
    absl::MutexLock lock(&mu_);
    timers_.erase(std::remove(timers_.begin(), timers_.end(), timer), timers_.end());
  });
}

void SimulatedClock::Jump(absl::Duration d) {
  CHECK_GE(d, absl::ZeroDuration()) << "a simulated clock does not go back";
  absl::MutexLock lock(&mu_);
  now_ += d;
}

void SimulatedClock::AdvanceBy(absl::Duration d) {
  CHECK_GE(d, absl::ZeroDuration()) << "a simulated clock does not go back";
  std::vector<std::shared_ptr<SimulatedTimer>> timers;
  absl::Time now;
  {
    absl::MutexLock lock(&mu_);
    now_ += d;
    now = now_;
    timers = timers_;
  }
  // Outside the clock's lock: the timers' callbacks read Now().
  for (const std::shared_ptr<SimulatedTimer>& timer : timers) timer->FireIfDue(now);
}

}  // namespace hips
