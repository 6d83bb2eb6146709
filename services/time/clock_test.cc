#include "services/time/clock.h"

#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(SimulatedClockTest, MovesOnlyWhenAdvancedAndFiresDueTimersOnTheCallersThread) {
  SimulatedClock clock;
  const absl::Time t0 = clock.Now();
  absl::Time deadline = t0 + absl::Seconds(10);
  std::vector<absl::Time> fired;
  std::unique_ptr<Timer> timer = clock.NewTimer([&] { return deadline; },
                                                [&](absl::Time now) {
                                                  fired.push_back(now);
                                                  deadline = absl::InfiniteFuture();
                                                });
  EXPECT_EQ(clock.Now(), t0);
  clock.AdvanceBy(absl::Seconds(9));
  EXPECT_TRUE(fired.empty());
  clock.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], t0 + absl::Seconds(10));
  // A deadline moved into the past fires at the next advance, even by zero.
  deadline = t0;
  clock.FireDue();
  EXPECT_EQ(fired.size(), 2u);
  // A stopped timer never fires again.
  deadline = t0;
  timer->Stop();
  clock.AdvanceBy(absl::Hours(1));
  EXPECT_EQ(fired.size(), 2u);
}

TEST(SimulatedClockTest, ATimerThatStaysDueFiresUntilItsDeadlineMoves) {
  SimulatedClock clock;
  const absl::Time t0 = clock.Now();
  // Three deadlines one second apart: an advance of five seconds fires all.
  std::vector<absl::Time> deadlines = {t0 + absl::Seconds(1), t0 + absl::Seconds(2),
                                       t0 + absl::Seconds(3)};
  int fired = 0;
  std::unique_ptr<Timer> timer =
      clock.NewTimer([&] { return deadlines.empty() ? absl::InfiniteFuture() : deadlines.front(); },
                     [&](absl::Time) {
                       ++fired;
                       deadlines.erase(deadlines.begin());
                     });
  clock.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(fired, 3);
}

TEST(SystemClockTest, ATimerFiresOnItsOwnThreadOnceDue) {
  absl::Mutex mu;
  bool fired = false;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(5);
  std::unique_ptr<Timer> timer = SystemClock()->NewTimer(
      [&] {
        absl::MutexLock lock(&mu);
        return fired ? absl::InfiniteFuture() : deadline;
      },
      [&](absl::Time now) {
        EXPECT_GE(now, deadline);
        absl::MutexLock lock(&mu);
        fired = true;
      });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&fired));
  EXPECT_GE(SystemClock()->Now(), deadline);
}

}  // namespace
}  // namespace hips
