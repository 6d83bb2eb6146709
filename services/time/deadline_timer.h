#ifndef HIPS_SERVICES_TIME_DEADLINE_TIMER_H_
#define HIPS_SERVICES_TIME_DEADLINE_TIMER_H_

#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/time/clock.h"

namespace hips {

// The system clock's Timer (clock.h): a thread that calls `on_due(now)` once
// the time `next_deadline()` returns has passed, then asks again. Both
// callbacks run on the timer's thread, without any lock of the timer held.
// Whoever moves the deadline earlier calls Poke() so the timer re-reads it.
// Stop() (idempotent, also run by the destructor) ends the thread.
// Thread-safe.
class DeadlineTimer final : public Timer {
 public:
  DeadlineTimer(std::function<absl::Time()> next_deadline, std::function<void(absl::Time)> on_due);
  ~DeadlineTimer() override;

  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  void Poke() override;
  void Stop() override;

 private:
  void Loop();

  const std::function<absl::Time()> next_deadline_;
  const std::function<void(absl::Time)> on_due_;
  absl::Mutex mu_;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::once_flag stop_once_;
  std::thread thread_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TIME_DEADLINE_TIMER_H_
