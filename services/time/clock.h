#ifndef HIPS_SERVICES_TIME_CLOCK_H_
#define HIPS_SERVICES_TIME_CLOCK_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace hips {

// A timer started by a Clock: calls on_due(now) once the time next_deadline()
// returns has passed on that clock, then asks for the next deadline. Whoever
// moves the deadline earlier calls Poke(). Stop() is idempotent; once it
// returns, on_due is not running and never runs again. Thread-safe.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void Poke() = 0;
  virtual void Stop() = 0;
};

// Where the tiers' time comes from: leases, round deadlines, coalescing
// windows and long polls read Now() and wait with timers of the same clock,
// so that a test can run them on a SimulatedClock it advances itself.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // A timer on this clock (see Timer). Both callbacks run without any lock
  // of the clock held; they must not call Stop() of their own timer.
  virtual std::unique_ptr<Timer> NewTimer(std::function<absl::Time()> next_deadline,
                                          std::function<void(absl::Time)> on_due) = 0;
};

// The system's clock (absl::Now); each timer is a thread of its own
// (DeadlineTimer). Never destroyed.
Clock* SystemClock();

// A clock that only moves when a test moves it. Timers on it have no
// threads: AdvanceBy and SetTime call the ones that are due, on the calling
// thread, before they return. Thread-safe.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000));
  ~SimulatedClock() override;

  absl::Time Now() const override;
  std::unique_ptr<Timer> NewTimer(std::function<absl::Time()> next_deadline,
                                  std::function<void(absl::Time)> on_due) override;

  // Moves the time forward by `d` (>= 0) and fires every timer whose
  // deadline is then past, each as often as it stays due (a bounded number
  // of times).
  void AdvanceBy(absl::Duration d);
  // Fires the timers that are due at the current time (after a component
  // moved its deadline into the past without the clock moving).
  void FireDue() { AdvanceBy(absl::ZeroDuration()); }
  // Moves the time forward without firing anything: a timer whose thread
  // has not run yet (a busy machine). The next AdvanceBy fires them.
  void Jump(absl::Duration d);

 private:
  class SimulatedTimer;

  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<SimulatedTimer>> timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hips

#endif  // HIPS_SERVICES_TIME_CLOCK_H_
