#include "services/core/weights_board.h"

#include <memory>
#include <optional>
#include <thread>

#include "gtest/gtest.h"

namespace hips {
namespace {

using Snapshot = WeightsBoard::Snapshot;

Snapshot Weights(int64_t version, int64_t incarnation = 1, bool done = false) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->incarnation = incarnation;
  s->training_done = done;
  return s;
}

// Records the one answer of a wait.
struct Answer {
  int calls = 0;
  absl::StatusOr<Snapshot> result = absl::UnknownError("not answered");
  WeightsBoard::Callback callback() {
    return [this](absl::StatusOr<Snapshot> r) {
      ++calls;
      result = std::move(r);
    };
  }
};

TEST(WeightsBoardTest, AWaitIsAnsweredAtOnceOrByThePublishThatSatisfiesIt) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  EXPECT_EQ(board.Latest(), nullptr);
  ASSERT_TRUE(board.Publish(Weights(3)));
  Answer now, later;
  board.WaitAsync(3, clock.Now() + absl::Seconds(5), 0, now.callback());
  ASSERT_EQ(now.calls, 1);
  EXPECT_EQ((*now.result)->version, 3);
  board.WaitAsync(5, clock.Now() + absl::Seconds(5), 1, later.callback());
  EXPECT_EQ(later.calls, 0);
  ASSERT_TRUE(board.Publish(Weights(4)));
  EXPECT_EQ(later.calls, 0);
  ASSERT_TRUE(board.Publish(Weights(6)));
  ASSERT_EQ(later.calls, 1);
  EXPECT_EQ((*later.result)->version, 6);
  // Older or equal versions are not published.
  EXPECT_FALSE(board.Publish(Weights(6)));
  EXPECT_FALSE(board.Publish(Weights(2)));
  EXPECT_EQ(board.Latest()->version, 6);
}

// An aggregator's edge rounds (fedavg) come between HQ's versions:
// snapshots order by (version, edge round), and a wait for (v, e) is
// answered by a later round of v or by any later version.
TEST(WeightsBoardTest, EdgeRoundsOrderBetweenVersions) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  auto edge = [](int64_t version, int64_t round) {
    auto s = std::make_shared<WeightsSnapshot>(*Weights(version));
    s->edge_round = round;
    return Snapshot(std::move(s));
  };
  ASSERT_TRUE(board.Publish(edge(3, 0)));
  ASSERT_TRUE(board.Publish(edge(3, 1)));
  EXPECT_FALSE(board.Publish(edge(3, 1)));
  EXPECT_FALSE(board.Publish(edge(3, 0)));  // HQ's weights of 3 again
  Answer same, next_round, after_last;
  board.WaitAsync(3, clock.Now() + absl::Seconds(5), 0, same.callback(), {1});
  ASSERT_EQ(same.calls, 1);
  EXPECT_EQ((*same.result)->edge_round, 1);
  board.WaitAsync(3, clock.Now() + absl::Seconds(5), 0, next_round.callback(), {2});
  board.WaitAsync(3, clock.Now() + absl::Seconds(5), 0, after_last.callback(), {3});
  EXPECT_EQ(next_round.calls, 0);
  ASSERT_TRUE(board.Publish(edge(3, 2)));
  ASSERT_EQ(next_round.calls, 1);
  EXPECT_EQ((*next_round.result)->edge_round, 2);
  EXPECT_EQ(after_last.calls, 0);  // round 3 of version 3 never comes: version 4 does
  ASSERT_TRUE(board.Publish(edge(4, 0)));
  ASSERT_EQ(after_last.calls, 1);
  EXPECT_EQ((*after_last.result)->version, 4);
  EXPECT_FALSE(board.Publish(edge(3, 5)));
  // HQ's final weights of the same version end every wait.
  Answer done;
  board.WaitAsync(4, clock.Now() + absl::Seconds(5), 0, done.callback(), {1});
  EXPECT_EQ(done.calls, 0);
  ASSERT_TRUE(board.Publish(Weights(4, 1, /*done=*/true)));
  EXPECT_EQ(done.calls, 1);
}

// A caller holding weights of another edge epoch (it moved to this
// aggregator, or this one restarted) takes any round of the version it asks
// for; one of the same epoch waits for its round.
TEST(WeightsBoardTest, AnotherEdgeEpochAnswersAtAnyRoundOfTheVersion) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  auto edge = [](int64_t version, int64_t round, int64_t epoch) {
    auto s = std::make_shared<WeightsSnapshot>(*Weights(version));
    s->edge_round = round;
    s->edge_epoch = epoch;
    return Snapshot(std::move(s));
  };
  ASSERT_TRUE(board.Publish(edge(5, 0, 77)));
  Answer mine, moved, older, next_version;
  board.WaitAsync(5, clock.Now() + absl::Seconds(5), 0, mine.callback(), {2, 77});
  board.WaitAsync(5, clock.Now() + absl::Seconds(5), 0, moved.callback(), {2, 42});
  board.WaitAsync(6, clock.Now() + absl::Seconds(5), 0, next_version.callback(), {0, 42});
  EXPECT_EQ(mine.calls, 0);
  ASSERT_EQ(moved.calls, 1);
  EXPECT_EQ((*moved.result)->edge_round, 0);
  EXPECT_EQ(next_version.calls, 0);  // (it pushed a last round: the next version only)
  // An epoch behind the caller's version is no answer either.
  board.WaitAsync(6, clock.Now() + absl::Seconds(5), 0, older.callback(), {1, 42});
  EXPECT_EQ(older.calls, 0);
  ASSERT_TRUE(board.Publish(edge(5, 2, 77)));
  EXPECT_EQ(mine.calls, 1);
  ASSERT_TRUE(board.Publish(edge(6, 0, 77)));
  EXPECT_EQ(next_version.calls, 1);
  EXPECT_EQ(older.calls, 1);
}

TEST(WeightsBoardTest, AWaitRunsIntoItsDeadlineOnTheBoardsClock) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  board.Publish(Weights(1));
  Answer a, b;
  board.WaitAsync(2, clock.Now() + absl::Seconds(2), 0, a.callback());
  board.WaitAsync(2, clock.Now() + absl::Seconds(1), 0, b.callback());
  clock.AdvanceBy(absl::Milliseconds(999));
  EXPECT_EQ(a.calls + b.calls, 0);
  clock.AdvanceBy(absl::Milliseconds(1));
  ASSERT_EQ(b.calls, 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(b.result.status())) << b.result.status();
  EXPECT_EQ(a.calls, 0);
  clock.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(a.calls, 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(a.result.status()));
  // A deadline already past answers at once.
  Answer c;
  board.WaitAsync(2, clock.Now(), 0, c.callback());
  ASSERT_EQ(c.calls, 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(c.result.status()));
}

TEST(WeightsBoardTest, TrainingDoneAndAnotherIncarnationEndAWait) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  board.Publish(Weights(10, /*incarnation=*/1));
  Answer restarted, done;
  board.WaitAsync(11, clock.Now() + absl::Hours(1), 1, restarted.callback());
  board.WaitAsync(100, clock.Now() + absl::Hours(1), 0, done.callback());
  // HQ restarted from an older checkpoint: a new line of versions.
  board.Publish(Weights(8, /*incarnation=*/2));
  ASSERT_EQ(restarted.calls, 1);
  EXPECT_EQ((*restarted.result)->incarnation, 2);
  EXPECT_EQ(done.calls, 0);
  board.Publish(Weights(9, 2, /*done=*/true));
  ASSERT_EQ(done.calls, 1);
  EXPECT_TRUE((*done.result)->training_done);
}

TEST(WeightsBoardTest, ACancelledWaitIsNeverAnsweredAndShutdownAnswersTheRest) {
  SimulatedClock clock;
  WeightsBoard board(&clock);
  Answer cancelled, pending, after;
  const int64_t id = board.WaitAsync(1, clock.Now() + absl::Seconds(1), 0, cancelled.callback());
  board.WaitAsync(1, clock.Now() + absl::Seconds(1), 0, pending.callback());
  EXPECT_TRUE(board.CancelWait(id));
  EXPECT_FALSE(board.CancelWait(id));
  board.Shutdown();
  EXPECT_EQ(cancelled.calls, 0);
  ASSERT_EQ(pending.calls, 1);
  EXPECT_TRUE(absl::IsUnavailable(pending.result.status()));
  board.WaitAsync(1, clock.Now() + absl::Seconds(1), 0, after.callback());
  ASSERT_EQ(after.calls, 1);
  EXPECT_TRUE(absl::IsUnavailable(after.result.status()));
  clock.AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(cancelled.calls, 0);
  board.Shutdown();  // idempotent
}

TEST(WeightsBoardTest, ABlockingWaitReturnsWhatAnotherThreadPublishes) {
  WeightsBoard board;  // the system clock
  std::thread publisher([&board] { board.Publish(Weights(7)); });
  absl::StatusOr<Snapshot> got = board.WaitFor(7, absl::Now() + absl::Seconds(60));
  publisher.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->version, 7);
  EXPECT_TRUE(absl::IsDeadlineExceeded(board.WaitFor(8, absl::Now()).status()));
}

}  // namespace
}  // namespace hips
