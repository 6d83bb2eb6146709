#include "aggregator/aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/numeric/fedavg.h"
#include "services/rounds/fedavg_policy.h"
#include "services/testing/resident_memory.h"
#include "services/time/clock.h"

namespace hips {
namespace {

// Options of an aggregator that acknowledges on acceptance: these tests
// play HQ themselves (NextAggregate), after the pushes returned. Time is
// the test's: `clock` (null: the system clock, for tests that do not
// depend on it).
AggregatorOptions Local(int workers, Clock* clock = nullptr) {
  AggregatorOptions o;
  o.id = "agg-0";
  o.expected_workers = workers;
  o.ack_after_hq = false;
  if (clock != nullptr) o.clock = clock;
  return o;
}

// The answer a push got, if any yet.
struct Answer {
  int calls = 0;
  absl::StatusOr<PushResult> result = absl::UnknownError("no answer yet");
  Aggregator::PushCallback callback() {
    return [this](absl::StatusOr<PushResult> r) {
      ++calls;
      result = std::move(r);
    };
  }
};

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::FloatNear;

std::shared_ptr<const WeightsSnapshot> Weights(int64_t version, size_t n, bool done = false,
                                               ModeConfig mode = {}, int64_t mode_since = 0) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->layout = *ModelLayout::Create({{"w", {static_cast<int64_t>(n)}}});
  s->weights.assign(n, 0.25f);
  s->training_done = done;
  s->mode = mode;
  s->mode_since = mode_since;
  return s;
}

std::shared_ptr<const WeightsSnapshot> AsyncWeights(int64_t version, size_t n,
                                                    ModeConfig mode = {Mode::kAsync, 0}) {
  return Weights(version, n, false, mode, 0);
}

// received = duplicate + dropped + forwarded + pending + edge_applied
void ExpectAccountingHolds(const AggregatorCounters& c) {
  int64_t dropped = 0;
  for (const auto& [reason, n] : c.gradients_dropped) dropped += n;
  EXPECT_EQ(c.gradients_received, c.gradients_duplicate + dropped + c.gradients_forwarded +
                                      c.gradients_pending + c.gradients_edge_applied);
}

GradientPush Push(const std::string& sender, int64_t version, std::vector<float> g,
                  int64_t samples) {
  GradientPush p;
  p.sender = sender;
  p.version = version;
  p.samples = samples;
  p.loss_sum = 0.5 * samples;
  p.gradient = std::move(g);
  return p;
}

TEST(AggregatorTest, ForwardsTheSampleWeightedSumOnceEveryWorkerContributed) {
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 3));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1, 2, 3}, 2)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {4, 5, 6}, 3)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->aggregator, "agg-0");
  EXPECT_EQ(out->version, 0);
  EXPECT_EQ(out->total_samples, 5);
  EXPECT_EQ(out->contributors, 2);
  EXPECT_DOUBLE_EQ(out->loss_sum, 2.5);
  EXPECT_THAT(out->sum, ElementsAre(14, 19, 24));  // 2·[1,2,3] + 3·[4,5,6]
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_received, 2);
  EXPECT_EQ(c.gradients_accepted, 2);
  EXPECT_EQ(c.rounds_closed, 1);
}

// Under an HQ buffer: w1's gradient {3, 4} completes the round of version
// 0 that w0's {1, 2} opened, and the aggregate goes to HQ whole.
void ExpectW1ClosesTheRoundOfVersion0(Aggregator& agg) {
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {3, 4}, 1)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 0);
  EXPECT_EQ(out->contributors, 2);
  EXPECT_THAT(out->sum, ElementsAre(4, 6));
}

// --hq_buffer: HQ moves on without this MDC, whose round of version 0
// still waits for w1. Its newer weights wait until that round closes (its
// work counts), then the aggregator serves the newest it holds.
TEST(AggregatorTest, UnderAnHqBufferNewerWeightsWaitUntilTheOpenRoundCloses) {
  ModeConfig buffered{Mode::kSync};
  buffered.hq_buffer = 2;
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 2, false, buffered));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1, 2}, 1)).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 0, false).ok());
  agg.PublishWeights(Weights(1, 2, false, buffered));
  agg.PublishWeights(Weights(2, 2, false, buffered));
  EXPECT_EQ(agg.LatestWeights()->version, 0);  // w1 still computes on 0
  EXPECT_EQ(agg.HqWeights()->version, 2);      // (the next pull asks for 3)
  ExpectW1ClosesTheRoundOfVersion0(agg);
  EXPECT_EQ(agg.LatestWeights()->version, 2);  // the newest, after the round
  EXPECT_EQ(agg.counters().gradients_dropped.count("superseded"), 0u);

  // With the round's workers gone, nothing is held.
  ASSERT_TRUE(agg.Heartbeat("w0", 0, /*leaving=*/true).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 0, /*leaving=*/true).ok());
  agg.PublishWeights(Weights(3, 2, false, buffered));
  EXPECT_EQ(agg.LatestWeights()->version, 3);

  // Without a buffer a new version supersedes the open round, as before.
  Aggregator plain(Local(2));
  plain.PublishWeights(Weights(0, 2));
  ASSERT_TRUE(plain.AcceptGradient(Push("w0", 0, {1, 2}, 1)).ok());
  ASSERT_TRUE(plain.Heartbeat("w1", 0, false).ok());
  plain.PublishWeights(Weights(1, 2));
  EXPECT_EQ(plain.LatestWeights()->version, 1);
  EXPECT_EQ(plain.counters().gradients_dropped.at("superseded"), 1);
}

// While the tier forms, the homes live so far may all have sent and the
// round still waits for the ones its flags expect: HQ's newer weights
// (another MDC's aggregate moved it on) wait too, and nothing sent is
// superseded. (A CI run caught this: a fast MDC's first round dropped.)
TEST(AggregatorTest, UnderAnHqBufferAFormingRoundKeepsWhatIsInIt) {
  ModeConfig buffered{Mode::kFedAvg};
  buffered.local_steps = 2;
  buffered.hq_buffer = 1;
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 2, false, buffered));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1, 2}, 1)).ok());  // w1 not here yet
  agg.PublishWeights(Weights(1, 2, false, buffered));
  EXPECT_EQ(agg.LatestWeights()->version, 0);
  EXPECT_EQ(agg.counters().gradients_dropped.count("superseded"), 0u);
  ASSERT_TRUE(agg.Heartbeat("w1", 0, false).ok());  // formed: the round waits for w1
  EXPECT_EQ(agg.LatestWeights()->version, 0);
  ExpectW1ClosesTheRoundOfVersion0(agg);
  EXPECT_EQ(agg.LatestWeights()->version, 1);
  ExpectAccountingHolds(agg.counters());
}

// HQ restarted from an older checkpoint while newer weights were held:
// the new line is taken at once, and the held weights of the old line are
// never served after it.
TEST(AggregatorTest, UnderAnHqBufferARestartedHqDropsTheHeldWeights) {
  ModeConfig buffered{Mode::kSync};
  buffered.hq_buffer = 2;
  auto of_line = [&](int64_t version, int64_t incarnation) {
    auto s = std::make_shared<WeightsSnapshot>(*Weights(version, 2, false, buffered));
    s->incarnation = incarnation;
    return s;
  };
  Aggregator agg(Local(2));
  agg.PublishWeights(of_line(5, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1, 2}, 1)).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 0, false).ok());
  agg.PublishWeights(of_line(7, 1));  // held: w1 computes on 5
  EXPECT_EQ(agg.LatestWeights()->version, 5);
  agg.PublishWeights(of_line(3, 2));  // HQ restarted at version 3
  EXPECT_EQ(agg.LatestWeights()->version, 3);
  EXPECT_EQ(agg.LatestWeights()->incarnation, 2);
  // w1's gradient of the old line is refused; rounds of the new line go on
  // and nothing of the old one comes back.
  EXPECT_FALSE(agg.AcceptGradient(Push("w1", 5, {3, 4}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 3, {1, 1}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 3, {1, 1}, 1)).ok());
  EXPECT_EQ(agg.LatestWeights()->incarnation, 2);
  EXPECT_EQ(agg.LatestWeights()->version, 3);
}

// A mode switch, or HQ's restart, is never held: it supersedes the round.
TEST(AggregatorTest, UnderAnHqBufferAModeSwitchIsTakenAtOnce) {
  ModeConfig buffered{Mode::kSync};
  buffered.hq_buffer = 2;
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 2, false, buffered));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1, 2}, 1)).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 0, false).ok());
  agg.PublishWeights(Weights(1, 2, false, ModeConfig{Mode::kSync}, /*mode_since=*/1));
  EXPECT_EQ(agg.LatestWeights()->version, 1);
  EXPECT_EQ(agg.counters().gradients_dropped.at("mode_changed"), 1);
}

TEST(AggregatorTest, CountsDuplicatesAndRefusalsByReason) {
  Aggregator agg(Local(2));
  EXPECT_TRUE(absl::IsUnavailable(agg.AcceptGradient(Push("w0", 0, {1}, 1)).status()));
  agg.PublishWeights(Weights(3, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 3, {1}, 1)).ok());
  absl::StatusOr<PushResult> again = agg.AcceptGradient(Push("w0", 3, {1}, 1));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_TRUE(absl::IsFailedPrecondition(agg.AcceptGradient(Push("w1", 2, {1}, 1)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(agg.AcceptGradient(Push("w1", 3, {1, 2}, 1)).status()));
  agg.RecordRefusal(DropReason::kInvalid);
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_received, 6);
  EXPECT_EQ(c.gradients_accepted, 1);
  EXPECT_EQ(c.gradients_duplicate, 1);
  EXPECT_EQ(c.gradients_dropped.at("future_version"), 1);
  EXPECT_EQ(c.gradients_dropped.at("stale_version"), 1);
  EXPECT_EQ(c.gradients_dropped.at("invalid"), 2);
  // received = accepted + duplicate + dropped
  int64_t dropped = 0;
  for (const auto& [reason, n] : c.gradients_dropped) dropped += n;
  EXPECT_EQ(c.gradients_received, c.gradients_accepted + c.gradients_duplicate + dropped);
}

// Every refusal of a live worker's gradient ends its part of the round: the
// round closes with the others', and the next aggregate names the workers
// whose gradients were non-finite (HQ judges divergence by them).
TEST(AggregatorTest, ARefusedGradientSettlesItsRoundAndANonFiniteOneIsNamedToHq) {
  Aggregator agg(Local(2));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::string name;
    std::function<absl::Status(int64_t version)> refuse;  // w0's push
    std::vector<std::string> named;
  };
  const std::vector<Case> cases = {
      {"a NaN value",
       [&](int64_t v) {
         return agg.AcceptGradient(Push("w0", v, {nan, 1}, 1)).status();
       },
       {"w0"}},
      {"a sum that would overflow",
       [&](int64_t v) {
         return agg.AcceptGradient(Push("w0", v, {3e38f, 0}, 1)).status();
       },
       {"w0"}},
      {"a NaN loss",
       [&](int64_t v) {
         GradientPush p = Push("w0", v, {1, 1}, 1);
         p.loss_sum = nan;
         return agg.AcceptGradient(p).status();
       },
       {"w0"}},
      {"a wrong number of floats",
       [&](int64_t v) {
         return agg.AcceptGradient(Push("w0", v, {1, 1, 1}, 1)).status();
       },
       {}},
      {"a header the adapter refused",
       [&](int64_t v) {
         agg.RecordRefusal(DropReason::kInvalid, "w0", v);
         return absl::InvalidArgumentError("refused by the adapter");
       },
       {}},
  };
  int64_t version = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    agg.PublishWeights(Weights(version, 2));
    ASSERT_TRUE(agg.AcceptGradient(Push("w1", version, {3e38f, 0}, 1)).ok());
    const absl::Status refused = c.refuse(version);
    EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
    EXPECT_EQ(IsNonFinite(refused), !c.named.empty()) << refused;
    std::optional<AggregatePush> out = agg.NextAggregate();
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->version, version);
    EXPECT_EQ(out->contributors, 1);
    EXPECT_THAT(out->sum, ElementsAre(3e38f, 0));
    EXPECT_EQ(out->non_finite_workers, c.named);
    agg.ReportForwarded(*out, PushResult{version, false, version + 1});
    ++version;
  }
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("non_finite"), 3);
  EXPECT_EQ(c.gradients_dropped.at("invalid"), 2);
  ExpectAccountingHolds(c);
  // A worker that is not a member (its first word was refused) ends
  // nobody's part: w2 is no live worker of this aggregator.
  agg.RecordRefusal(DropReason::kInvalid, "w2", version);
  EXPECT_EQ(agg.counters().gradients_dropped.at("invalid"), 3);
}

TEST(AggregatorTest, ItsCountersNameWhomTheOpenRoundWaitsForAndSinceWhen) {
  SimulatedClock clock;
  Aggregator agg(Local(3, &clock));
  for (const char* w : {"w2", "w0", "w1"}) ASSERT_TRUE(agg.Heartbeat(w, 1, false).ok());
  EXPECT_EQ(agg.counters().round.version, -1);  // no weights, no round
  agg.PublishWeights(Weights(4, 1));
  clock.AdvanceBy(absl::Seconds(1.5));
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 4, {1}, 1)).ok());
  const RoundWait round = agg.counters().round;
  EXPECT_EQ(round.version, 4);
  EXPECT_EQ(round.members, (std::vector<std::string>{"w0", "w2"}));
  EXPECT_DOUBLE_EQ(round.waited_s, 1.5);
  agg.Shutdown();
}

// Bounded state (docs/faults.md): 100,000 distinct workers, one a
// millisecond on the test's clock, each joining, pushing one numbered
// gradient and leaving. The ledger keeps the workers of the last
// kRetentionLeases leases (10 s: 10,000), not everyone it saw; a forgotten
// worker's late repeat is refused, not summed again.
TEST(AggregatorTest, ASoakOf100000WorkersThatComeAndGoKeepsItsTablesBounded) {
  SimulatedClock clock;
  Aggregator agg(Local(2, &clock));
  agg.PublishWeights(AsyncWeights(0, 1));
  constexpr int kWorkers = 100000;
  const double rss_before = ResidentMiB();
  Aggregator::Tables most;
  for (int i = 0; i < kWorkers; ++i) {
    const std::string worker = absl::StrCat("w", i);
    ASSERT_TRUE(agg.Heartbeat(worker, 1, false).ok());
    GradientPush p = Push(worker, 0, {1}, 1);
    p.sequence = 1;
    ASSERT_TRUE(agg.AcceptGradient(p).ok());
    std::optional<AggregatePush> out = agg.NextAggregate();
    ASSERT_TRUE(out.has_value());
    agg.ReportForwarded(*out, PushResult{0, false, 0});
    ASSERT_TRUE(agg.Heartbeat(worker, 1, /*leaving=*/true).ok());
    clock.AdvanceBy(absl::Milliseconds(1));
    if (i % 1000 == 0) {
      const Aggregator::Tables t = agg.tables();
      most.ledger = std::max(most.ledger, t.ledger);
      most.remembered = std::max(most.remembered, t.remembered);
      most.live = std::max(most.live, t.live);
    }
  }
  const double rss_after = ResidentMiB();
  EXPECT_LE(most.ledger, 12600u);
  EXPECT_GE(most.ledger, 10000u);
  EXPECT_LE(most.remembered, 12600u);
  EXPECT_LE(most.live, 1u);
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_forwarded, kWorkers);
  // w0 again, its first push repeated late (after it was forgotten): it
  // may repeat one this aggregator forgot, so it is refused as stale.
  GradientPush late = Push("w0", 0, {1}, 1);
  late.sequence = 1;
  // (HQ's newest version moved on: the horizon is above version 0.)
  agg.PublishWeights(AsyncWeights(5, 1));
  clock.AdvanceBy(absl::Seconds(20));
  ASSERT_TRUE(agg.Heartbeat("w-other", 1, false).ok());  // a sweep at version 5
  ASSERT_TRUE(agg.Heartbeat("w-other", 1, true).ok());
  clock.AdvanceBy(absl::Seconds(20));
  ASSERT_TRUE(agg.Heartbeat("w-last", 1, false).ok());
  const absl::Status refused = agg.AcceptGradient(late).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("no longer remembers"));
  EXPECT_EQ(agg.counters().gradients_forwarded, kWorkers);
  ExpectAccountingHolds(agg.counters());
  std::printf(
      "aggregator soak: %d workers, ledger at most %zu entries, resident %.1f MiB before, "
      "%.1f after\n",
      kWorkers, most.ledger, rss_before, rss_after);
  agg.Shutdown();
}

// A gradient computed on weights of another HQ incarnation (HQ restarted
// since: its versions after the checkpoint are another line) is refused,
// never summed; aggregates say which incarnation they were computed for.
TEST(AggregatorTest, AGradientOfAnotherHqIncarnationIsRefused) {
  Aggregator agg(Local(1));
  auto weights = std::make_shared<WeightsSnapshot>(*AsyncWeights(7, 1));
  weights->incarnation = 42;
  agg.PublishWeights(weights);
  GradientPush old_line = Push("w0", 7, {1}, 1);
  old_line.hq_incarnation = 41;
  const absl::Status refused = agg.AcceptGradient(old_line).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("HQ restarted since"));
  EXPECT_EQ(agg.counters().gradients_dropped.at("hq_restarted"), 1);
  GradientPush current = Push("w0", 7, {2}, 1);
  current.hq_incarnation = 42;
  ASSERT_TRUE(agg.AcceptGradient(current).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(2));
  EXPECT_EQ(out->hq_incarnation, 42);
  agg.ReportForwarded(*out, PushResult{7, false, 8});
  GradientPush unsaid = Push("w0", 7, {3}, 1);  // (0: not said, as older workers)
  unsaid.sequence = 0;
  ASSERT_TRUE(agg.AcceptGradient(unsaid).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(3));
  agg.ReportForwarded(*out, PushResult{7, false, 8});
  ExpectAccountingHolds(agg.counters());
  agg.Shutdown();
}

TEST(AggregatorTest, AnAsyncAggregatorReportsANonFiniteGradientAtOnce) {
  Aggregator agg(Local(2));
  agg.PublishWeights(AsyncWeights(7, 2));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(IsNonFinite(agg.AcceptGradient(Push("w0", 6, {inf, 1}, 1)).status()));
  // Nothing else to carry it: an empty aggregate of its version says so.
  std::optional<AggregatePush> report = agg.NextAggregate();
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->version, 6);
  EXPECT_EQ(report->contributors, 0);
  EXPECT_EQ(report->total_samples, 0);
  EXPECT_EQ(report->non_finite_workers, std::vector<std::string>{"w0"});
  // The next real aggregate names nobody again.
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 7, {1, 1}, 1)).ok());
  std::optional<AggregatePush> next = agg.NextAggregate();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->contributors, 1);
  EXPECT_TRUE(next->non_finite_workers.empty());
}

TEST(AggregatorTest, NewerWeightsOpenTheirRoundBeforeWorkersCanSeeThem) {
  Aggregator agg(Local(1));
  agg.PublishWeights(Weights(0, 1));
  // A worker waiting for version 1 must be able to push for version 1 as
  // soon as it has the weights.
  std::thread worker([&agg] {
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w =
        agg.WaitForWeights(1, absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_TRUE(agg.AcceptGradient(Push("w0", (*w)->version, {1}, 1)).ok());
  });
  agg.PublishWeights(Weights(1, 1));
  worker.join();
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 1);
}

TEST(AggregatorTest, OlderWeightsAreIgnoredAndShutdownEndsWaits) {
  Aggregator agg(Local(1));
  agg.PublishWeights(Weights(5, 1));
  agg.PublishWeights(Weights(4, 1));
  EXPECT_EQ(agg.LatestWeights()->version, 5);
  EXPECT_TRUE(absl::IsDeadlineExceeded(agg.WaitForWeights(6, absl::Now()).status()));
  std::thread waiter([&agg] {
    EXPECT_TRUE(
        absl::IsUnavailable(agg.WaitForWeights(6, absl::Now() + absl::Seconds(60)).status()));
    EXPECT_FALSE(agg.NextAggregate().has_value());
  });
  agg.Shutdown();
  waiter.join();
}

TEST(AggregatorTest, AsyncForwardsEachGradientAloneWithoutAWindow) {
  Aggregator agg(Local(2));
  agg.PublishWeights(AsyncWeights(7, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 7, {1, 2}, 2)).ok());
  std::optional<AggregatePush> first = agg.NextAggregate();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 6, {1, 1}, 3)).ok());
  std::optional<AggregatePush> second = agg.NextAggregate();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->version, 7);
  EXPECT_THAT(first->sum, ElementsAre(2, 4));
  EXPECT_EQ(second->version, 6);
  EXPECT_EQ(second->contributors, 1);
  EXPECT_TRUE(second->contributor_versions.empty());
  EXPECT_THAT(second->sum, ElementsAre(3, 3));
  EXPECT_GT(second->sequence, first->sequence);
  EXPECT_EQ(agg.counters().gradients_pending, 2);
  agg.ReportForwarded(*first, PushResult{7, false, 8});
  agg.ReportForwarded(*second, absl::FailedPreconditionError("too stale"));
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_forwarded, 2);
  EXPECT_EQ(c.gradients_pending, 0);
  EXPECT_EQ(c.aggregates_refused, 1);
  ExpectAccountingHolds(c);
}

// A worker restarted "in the past" numbers its pushes from 1 again, far
// below its predecessor's: taken as new, since its incarnation is another;
// what the dead process sends late is a repeat. The aggregates name the
// aggregator's own incarnation and count 1, 2... within it.
TEST(AggregatorTest, AWorkerRestartedInThePastIsNotTakenForARepeat) {
  Aggregator agg(Local(1));
  agg.PublishWeights(AsyncWeights(0, 1));
  GradientPush dead = Push("w0", 0, {1}, 1);
  dead.incarnation = 10;
  dead.sequence = 1'700'000'000'000'000;
  ASSERT_TRUE(agg.AcceptGradient(dead).ok());
  std::optional<AggregatePush> first = agg.NextAggregate();  // (room in the queue)
  GradientPush restarted = Push("w0", 0, {2}, 1);
  restarted.incarnation = 20;
  restarted.sequence = 1;
  absl::StatusOr<PushResult> r = agg.AcceptGradient(restarted);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->duplicate);
  std::optional<AggregatePush> second = agg.NextAggregate();
  dead.retry = true;
  r = agg.AcceptGradient(dead);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->duplicate);
  ASSERT_TRUE(first.has_value() && second.has_value());
  ASSERT_EQ(second->contributor_list.size(), 1u);
  EXPECT_EQ(first->contributor_list[0].incarnation, 10);
  EXPECT_EQ(second->contributor_list[0].incarnation, 20);
  EXPECT_EQ(second->contributor_list[0].sequence, 1);
  EXPECT_GT(first->incarnation, 0);
  EXPECT_EQ(second->incarnation, first->incarnation);
  EXPECT_EQ(first->sequence, 1);
  EXPECT_EQ(second->sequence, 2);
  EXPECT_EQ(agg.counters().gradients_duplicate, 1);
}

// Bounded influence: a gradient whose norm is above --clip_norm's bound is
// scaled down to it before it is summed, and counted.
TEST(AggregatorTest, AGradientAboveTheClipNormIsScaledDownToItAndCounted) {
  AggregatorOptions o = Local(2);
  o.clip_norm = *ParseClipNorm("1");
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(0, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {3, 4}, 2)).ok());  // norm 5: x 1/5
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(FloatEq(2 * 0.6f), FloatEq(2 * 0.8f)));
  EXPECT_EQ(out->total_samples, 2);  // its weight stays its samples'
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {0.6f, 0}, 3)).ok());  // within the bound
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(FloatEq(3 * 0.6f), FloatEq(0)));
  EXPECT_EQ(agg.counters().gradients_clipped, 1);
  ExpectAccountingHolds(agg.counters());
}

// The automatic bound follows the honest gradients: a push of 1e30 values
// from a member holding valid credentials moves the sum by at most three
// times their median norm.
TEST(AggregatorTest, TheAutomaticClipNormStopsAHugePush) {
  AggregatorOptions o = Local(2);
  o.clip_norm = *ParseClipNorm("auto");
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(0, 2));
  for (int i = 0; i < NormClipper::kWarmup; ++i) {
    ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {0, 1}, 1)).ok());
    ASSERT_TRUE(agg.NextAggregate().has_value());
  }
  ASSERT_TRUE(agg.AcceptGradient(Push("intruder", 0, {1e30f, 1e30f}, 1)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  const float each = 3.0f / std::sqrt(2.0f);  // norm 3 = 3 x the median 1
  EXPECT_THAT(out->sum, ElementsAre(FloatNear(each, 1e-5f), FloatNear(each, 1e-5f)));
  EXPECT_EQ(agg.counters().gradients_clipped, 1);
}

// --robust=median in a sync round of three: the liar far from the others
// is left out (counted as trimmed), the rest counted once each whatever
// samples they claim.
TEST(AggregatorTest, ARobustRoundLeavesTheLiarOutAndCountsEachHomeOnce) {
  AggregatorOptions o = Local(3);
  o.robust = {RobustMean::Kind::kMedian, 0.1};
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1, 2}, 2)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {3, 4}, 6)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("liar", 0, {1e30f, -1e30f}, 1000)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->total_samples, 8);  // the liar's samples do not count
  EXPECT_EQ(out->contributors, 3);
  // The mean {2, 3} of the two (not weighted by 2 and 6), times 8: HQ's
  // mean is {2, 3}.
  EXPECT_THAT(out->sum, ElementsAre(FloatEq(2 * 8), FloatEq(3 * 8)));
  EXPECT_EQ(agg.counters().gradients_trimmed, 1);
  ExpectAccountingHolds(agg.counters());
  // Three honest ones: their coordinate-wise median.
  agg.PublishWeights(Weights(1, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 1, {1, 5}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 1, {3, 4}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("liar", 1, {2, 6}, 1)).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(FloatEq(2 * 3), FloatEq(5 * 3)));
  EXPECT_EQ(agg.counters().gradients_trimmed, 1);
}

// The hole CI found: a liar that joins a forming aggregator before its
// second honest home is in a round of 2, where nobody can be left out. The
// larger is held to the smaller's norm (counted as clipped when it is more
// than 4 times it, never a strike): the round moves as the honest home
// alone would at most.
TEST(AggregatorTest, ALiarInARoundOfTwoIsHeldToTheHonestNorm) {
  AggregatorOptions o = Local(2);
  o.robust = {RobustMean::Kind::kTrimmedMean, 0.1};
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("liar", 0, {1e30f, 0}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {3, 4}, 1)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  // ({5, 0} + {3, 4}) / 2, times the 2 samples.
  EXPECT_EQ(out->total_samples, 2);
  EXPECT_THAT(out->sum, ElementsAre(FloatNear(8, 1e-4f), FloatNear(4, 1e-4f)));
  EXPECT_EQ(agg.counters().gradients_clipped, 1);
  EXPECT_EQ(agg.counters().gradients_trimmed, 0);
  ExpectAccountingHolds(agg.counters());
  // Two honest homes of similar norms are not named.
  agg.PublishWeights(Weights(1, 2));
  ASSERT_TRUE(agg.AcceptGradient(Push("liar", 1, {4, 3}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 1, {6, 8}, 2)).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(FloatNear(10.5f, 1e-4f), FloatNear(10.5f, 1e-4f)));
  EXPECT_EQ(agg.counters().gradients_clipped, 1);
}

// --quarantine_ms: a liar left out of Quarantine::kStrikes robust rounds
// in a row is put out (pushes and heartbeats refused, no round waits for
// it) until its time is up; a malformed push is a strike too.
TEST(AggregatorTest, ALiarLeftOutAgainAndAgainIsPutOutForAWhile) {
  SimulatedClock clock;
  AggregatorOptions o = Local(3, &clock);
  o.robust = {RobustMean::Kind::kTrimmedMean, 0.1};
  o.quarantine = absl::Seconds(30);
  o.lease = absl::Hours(1);
  Aggregator agg(o);
  int64_t version = 0;
  for (; version < Quarantine::kStrikes; ++version) {
    agg.PublishWeights(Weights(version, 2));
    ASSERT_TRUE(agg.AcceptGradient(Push("w0", version, {1, 2}, 4)).ok());
    ASSERT_TRUE(agg.AcceptGradient(Push("w1", version, {3, 4}, 4)).ok());
    ASSERT_TRUE(agg.AcceptGradient(Push("liar", version, {1e30f, 1e30f}, 4)).ok());
    ASSERT_TRUE(agg.NextAggregate().has_value());
  }
  EXPECT_EQ(agg.counters().gradients_trimmed, Quarantine::kStrikes);
  EXPECT_EQ(agg.counters().members_quarantined, 1);
  // Its next push is refused, and it leaves: the round is the honest two's.
  agg.PublishWeights(Weights(version, 2));
  absl::StatusOr<PushResult> refused = agg.AcceptGradient(Push("liar", version, {1e30f, 0}, 4));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("liar is put out for another 30s"));
  EXPECT_EQ(agg.Heartbeat("liar", 0, false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", version, {1, 2}, 4)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", version, {3, 4}, 4)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 2);
  EXPECT_EQ(agg.counters().gradients_dropped.at("quarantined"), 1);
  ExpectAccountingHolds(agg.counters());
  // Once its time is up it may push again (and is judged afresh).
  clock.AdvanceBy(absl::Seconds(31));
  ++version;
  agg.PublishWeights(Weights(version, 2));
  EXPECT_TRUE(agg.Heartbeat("liar", 0, false).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("liar", version, {2, 3}, 4)).ok());
  // Malformed pushes (the wrong size) are strikes too.
  for (int i = 0; i < Quarantine::kStrikes; ++i) {
    EXPECT_FALSE(agg.AcceptGradient(Push("bad", version, {1, 2, 3}, 4)).ok());
  }
  EXPECT_EQ(agg.counters().members_quarantined, 2);
  EXPECT_EQ(agg.AcceptGradient(Push("bad", version, {1, 2}, 4)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --max_samples_per_push: a claim above the bound counts with the bound,
// its mean gradient kept; the automatic bound follows the honest claims.
TEST(AggregatorTest, AClaimAboveMaxSamplesPerPushCountsWithTheBound) {
  AggregatorOptions o = Local(1);
  o.max_samples_per_push = *ParseRunningBound("auto", "--max_samples_per_push", kSampleCapMultiple);
  Aggregator agg(o);
  int64_t version = 0;
  for (int i = 0; i < NormClipper::kWarmup; ++i, ++version) {
    agg.PublishWeights(Weights(version, 1));
    ASSERT_TRUE(agg.AcceptGradient(Push("w0", version, {1}, 32)).ok());
    ASSERT_TRUE(agg.NextAggregate().has_value());
  }
  agg.PublishWeights(Weights(version, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", version, {0.5f}, 1 << 20)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->total_samples, 4 * 32);  // four times the median claim
  EXPECT_THAT(out->sum, ElementsAre(FloatEq(0.5f * 4 * 32)));
  EXPECT_EQ(agg.counters().gradients_capped, 1);
  ExpectAccountingHolds(agg.counters());
}

TEST(AggregatorTest, CoalescesGradientsOfAnyVersionWithinTheWindow) {
  SimulatedClock clock;
  AggregatorOptions o = Local(3, &clock);
  o.coalesce_window = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(5, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1}, 1)).ok());
  clock.AdvanceBy(absl::Minutes(1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 4, {1}, 2)).ok());
  clock.AdvanceBy(absl::Minutes(58));
  EXPECT_EQ(agg.counters().rounds_closed, 0);
  clock.AdvanceBy(absl::Minutes(1));  // an hour after the first
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 4);  // the oldest
  EXPECT_EQ(out->contributors, 2);
  EXPECT_EQ(out->contributor_versions, (std::map<int64_t, int64_t>{{4, 1}, {5, 1}}));
  EXPECT_THAT(out->sum, ElementsAre(3));
  // A sender's second gradient sends the batch so far; a full batch (every
  // worker in) goes at once.
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {2}, 1)).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 5, {3}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w2", 5, {4}, 1)).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(9));
  EXPECT_EQ(out->contributors, 3);
  ExpectAccountingHolds(agg.counters());
}

TEST(AggregatorTest, SspDropsGradientsAlreadyTooStaleForHq) {
  Aggregator agg(Local(1));
  agg.PublishWeights(AsyncWeights(5, 1, {Mode::kSsp, 1}));
  EXPECT_TRUE(absl::IsFailedPrecondition(agg.AcceptGradient(Push("w0", 3, {1}, 1)).status()));
  absl::StatusOr<PushResult> ok = agg.AcceptGradient(Push("w0", 4, {1}, 1));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->newest_version, 5);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  // HQ's ack says it reached version 9 (its weights arrive later): version 7
  // is too stale now.
  agg.ReportForwarded(*out, PushResult{4, false, 9});
  agg.PublishWeights(AsyncWeights(8, 1, {Mode::kSsp, 1}));
  EXPECT_TRUE(absl::IsFailedPrecondition(agg.AcceptGradient(Push("w0", 7, {1}, 1)).status()));
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("staleness_exceeded"), 2);
  ExpectAccountingHolds(c);
}

TEST(AggregatorTest, AModeSwitchDropsWhatWasComputedUnderTheOldMode) {
  AggregatorOptions o = Local(2);
  o.coalesce_window = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(5, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1}, 1)).ok());  // waits in the batch
  agg.PublishWeights(Weights(6, 1, false, {Mode::kSync, 0}, 6));
  EXPECT_TRUE(absl::IsFailedPrecondition(agg.AcceptGradient(Push("w1", 5, {1}, 1)).status()));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 6, {1}, 1)).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 6, {1}, 1)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 6);
  EXPECT_EQ(out->contributors, 2);
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("mode_changed"), 2);  // the batched one and the late one
  EXPECT_EQ(c.rounds_closed, 1);
  ExpectAccountingHolds(c);
}

TEST(AggregatorTest, ASyncRoundClosesAtItsDeadlineAndDropsTheLateGradient) {
  SimulatedClock clock;
  AggregatorOptions o = Local(2, &clock);
  o.quorum_workers = 1;
  o.round_deadline = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("fast", 0, {1}, 2)).ok());
  clock.AdvanceBy(absl::Minutes(59));
  EXPECT_EQ(agg.counters().rounds_closed, 0);
  clock.AdvanceBy(absl::Minutes(1));
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_THAT(out->sum, ElementsAre(2));
  clock.AdvanceBy(absl::Hours(1));
  const absl::Status late = agg.AcceptGradient(Push("slow", 0, {1}, 2)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  // A gradient of a round HQ moved past (HQ's own deadline) is superseded.
  agg.PublishWeights(Weights(1, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("fast", 1, {1}, 2)).ok());
  agg.PublishWeights(Weights(2, 1));
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("round_closed"), 1);
  EXPECT_EQ(c.gradients_dropped.at("superseded"), 1);
  EXPECT_EQ(c.gradients_pending, 1);  // the aggregate not yet reported
  ExpectAccountingHolds(c);
}

TEST(AggregatorTest, ALateGradientFirstClosesTheRoundItMissed) {
  // The deadline passed but the timer has not run yet (a busy machine): the
  // late gradient must not leave the round closed and unsent.
  SimulatedClock clock;
  AggregatorOptions o = Local(2, &clock);
  o.quorum_workers = 1;
  o.round_deadline = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("fast", 0, {1}, 2)).ok());
  clock.Jump(absl::Hours(2));
  const absl::Status late = agg.AcceptGradient(Push("slow", 0, {1}, 2)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_EQ(agg.counters().gradients_dropped.at("round_closed"), 1);
}

TEST(AggregatorTest, PushesWaitWhileTheQueueTowardsHqIsFull) {
  AggregatorOptions o = Local(1);
  o.max_workers = 3;  // w0, w1 and w2 have room
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(0, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 1)).ok());  // queued
  Answer second;
  agg.AcceptGradient(Push("w1", 0, {1}, 1), second.callback());
  EXPECT_EQ(second.calls, 0);  // parked: not even counted yet
  EXPECT_EQ(agg.counters().gradients_received, 1);
  ASSERT_TRUE(agg.NextAggregate().has_value());  // room again: taken in
  ASSERT_EQ(second.calls, 1);
  EXPECT_TRUE(second.result.ok()) << second.result.status();
  EXPECT_EQ(agg.counters().gradients_received, 2);
  // A push parked at shutdown is counted and answered UNAVAILABLE.
  Answer third;
  agg.AcceptGradient(Push("w2", 0, {1}, 1), third.callback());
  EXPECT_EQ(third.calls, 0);
  agg.Shutdown();
  ASSERT_EQ(third.calls, 1);
  EXPECT_TRUE(absl::IsUnavailable(third.result.status()));
  // Shutdown counts what never left as dropped.
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("shutdown"), 2);  // the queued one and the parked one
  EXPECT_EQ(c.gradients_pending, 1);                 // taken by NextAggregate, not reported
  ExpectAccountingHolds(c);
}

GradientPush Numbered(const std::string& sender, int64_t version, int64_t sequence,
                      bool retry = false) {
  GradientPush p = Push(sender, version, {1}, 1);
  p.sequence = sequence;
  p.retry = retry;
  return p;
}

TEST(AggregatorTest, ARoundStopsWaitingForAWorkerWhoseLeaseExpired) {
  SimulatedClock clock;
  Aggregator agg(Local(2, &clock));  // leases of 2 s
  agg.PublishWeights(Weights(0, 1));
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 2, false).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 1)).ok());
  clock.AdvanceBy(absl::Seconds(1.5));
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  clock.AdvanceBy(absl::Seconds(0.4));
  EXPECT_EQ(agg.counters().rounds_closed, 0);  // w1 may still come
  clock.AdvanceBy(absl::Seconds(0.1));         // w1's lease ran out
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_EQ(agg.counters().live_workers, std::vector<std::string>{"w0"});
  // w1 rejoins: the next round waits for it again, until it leaves.
  clock.AdvanceBy(absl::Seconds(0.5));
  ASSERT_TRUE(agg.Heartbeat("w1", 3, false).ok());
  agg.PublishWeights(Weights(1, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 1, {1}, 1)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  clock.AdvanceBy(absl::Seconds(0.1));
  ASSERT_TRUE(agg.Heartbeat("w1", 3, /*leaving=*/true).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 2);
}

// Elastic membership: a round is over the workers live when it opens. One
// that joins mid-round is not waited for (it takes part from the next
// round), though its gradient is taken if it comes before the round closes.
TEST(AggregatorTest, AWorkerThatJoinsMidRoundTakesPartFromTheNext) {
  SimulatedClock clock;
  AggregatorOptions o = Local(1, &clock);  // a quorum of 1
  o.max_workers = 8;
  Aggregator agg(o);
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  agg.PublishWeights(Weights(0, 1));
  ASSERT_TRUE(agg.Heartbeat("w1", 2, false).ok());  // joins round 0 late
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {5}, 1)).ok());  // taken, not waited for
  EXPECT_EQ(agg.counters().rounds_closed, 0);  // w0 is
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 1)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 2);
  // Round 1 opened with both: it waits for w1 too.
  agg.PublishWeights(Weights(1, 1));
  ASSERT_TRUE(agg.Heartbeat("w2", 3, false).ok());  // joins round 1 late: not waited for
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 1, {1}, 1)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 1, {1}, 1)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 2);
  ExpectAccountingHolds(agg.counters());
}

// fedavg with participation 0.5 over 4 live workers: each round draws 2
// (DrawParticipants with this aggregator's id), tells them with the weights,
// sums their deltas sample-weighted, refuses the others' pushes (not_drawn),
// and closes once every live drawn worker is in.
TEST(AggregatorTest, FedAvgDrawsItsRoundsWorkersAndSumsOnlyTheirDeltas) {
  SimulatedClock clock;
  Aggregator agg(Local(4, &clock));
  const ModeConfig fedavg{Mode::kFedAvg, 0, 5, 0.5};
  const std::vector<std::string> all = {"w0", "w1", "w2", "w3"};
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(agg.Heartbeat(all[i], i + 1, false).ok());
  for (int64_t v = 0; v < 3; ++v) {
    agg.PublishWeights(Weights(v, 2, false, fedavg));
    const std::vector<std::string> drawn = DrawParticipants(all, 0.5, v, "agg-0");
    ASSERT_EQ(drawn.size(), 2u);
    EXPECT_EQ(agg.LatestWeights()->participants, drawn) << v;
    std::vector<std::string> others;
    for (const std::string& id : all) {
      if (!std::count(drawn.begin(), drawn.end(), id)) others.push_back(id);
    }
    absl::StatusOr<PushResult> refused = agg.AcceptGradient(Push(others[0], v, {9, 9}, 50));
    EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
    ASSERT_TRUE(agg.AcceptGradient(Push(drawn[0], v, {1, 2}, 10)).ok());
    EXPECT_EQ(agg.counters().rounds_closed, v);  // the other drawn one may still come
    ASSERT_TRUE(agg.AcceptGradient(Push(drawn[1], v, {3, -1}, 30)).ok());
    EXPECT_EQ(agg.counters().rounds_closed, v + 1);
    std::optional<AggregatePush> out = agg.NextAggregate();
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->contributors, 2);
    EXPECT_EQ(out->total_samples, 40);
    EXPECT_THAT(out->sum, ElementsAre(100, -10));  // 10·[1,2] + 30·[3,−1]
  }
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("not_drawn"), 3);
  ExpectAccountingHolds(c);
}

// Weights that arrive while the tier forms are held back until it has: a
// draw among homes that have not joined cannot be made, and everyone taking
// part would bring every home of the tier at once. The homes of one process
// join in one heartbeat.
TEST(AggregatorTest, AFedAvgDrawWaitsForTheTierToFormAndThenServesTheWeights) {
  SimulatedClock clock;
  Aggregator agg(Local(4, &clock));
  const ModeConfig fedavg{Mode::kFedAvg, 0, 5, 0.5};
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  agg.PublishWeights(Weights(0, 2, false, fedavg));
  EXPECT_EQ(agg.LatestWeights(), nullptr);  // held
  const std::vector<std::string> homes = {"w1", "w2", "w3"};
  absl::StatusOr<HeartbeatAnswer> joined = agg.Heartbeat(homes, 2, false);
  ASSERT_TRUE(joined.ok()) << joined.status();
  ASSERT_NE(agg.LatestWeights(), nullptr);
  EXPECT_EQ(agg.LatestWeights()->version, 0);
  EXPECT_EQ(agg.LatestWeights()->participants,
            DrawParticipants({"w0", "w1", "w2", "w3"}, 0.5, 0, "agg-0"));
  EXPECT_EQ(agg.counters().live_workers.size(), 4u);
  EXPECT_FALSE(agg.counters().forming);
  // A process's homes leave together.
  EXPECT_TRUE(agg.Heartbeat(std::vector<std::string>{"w1", "w2"}, 2, /*leaving=*/true).ok());
  EXPECT_EQ(agg.counters().live_workers, (std::vector<std::string>{"w0", "w3"}));
}

// A drawn worker that dies holds its round up for one lease; when every
// drawn worker is gone and none pushed, the round closes empty (this
// aggregator is done with the version; HQ moves on).
TEST(AggregatorTest, AFedAvgRoundWhoseDrawnWorkersDieClosesAfterTheirLeases) {
  SimulatedClock clock;
  Aggregator agg(Local(2, &clock));  // leases of 2 s
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  ASSERT_TRUE(agg.Heartbeat("w1", 2, false).ok());
  agg.PublishWeights(Weights(0, 1, false, ModeConfig{Mode::kFedAvg, 0, 5, 0.5}));
  const std::vector<std::string> drawn = agg.LatestWeights()->participants;
  ASSERT_EQ(drawn.size(), 1u);
  const std::string other = drawn[0] == "w0" ? "w1" : "w0";
  for (int i = 0; i < 4; ++i) {  // only the one not drawn stays live
    clock.AdvanceBy(absl::Seconds(0.5));
    ASSERT_TRUE(agg.Heartbeat(other, 9, false).ok());
  }
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 0);
  EXPECT_EQ(out->version, 0);
  // The next round draws among the live: the one left.
  agg.PublishWeights(Weights(1, 1, false, ModeConfig{Mode::kFedAvg, 0, 5, 0.5}));
  EXPECT_EQ(agg.LatestWeights()->participants, std::vector<std::string>{other});
}

// Without participation (F = 1) fedavg rounds are sync rounds of every
// live worker, and the weights name no participants.
TEST(AggregatorTest, FedAvgWithFullParticipationWaitsForEveryLiveWorker) {
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 1, false, ModeConfig{Mode::kFedAvg, 0, 3, 1.0}));
  EXPECT_TRUE(agg.LatestWeights()->participants.empty());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 3)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 0);
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {2}, 1)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(5));
}

// fedavg weights of `version` with E edge rounds over a layout with a
// buffer: two parameters w = {1, 2} and one running mean of 0.5.
std::shared_ptr<const WeightsSnapshot> EdgeWeights(int64_t version, int64_t edge_rounds) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->layout = *ModelLayout::Create({{"w", {2}}, {"bn.running_mean", {1}, /*buffer=*/true}});
  s->weights = {1.0f, 2.0f, 0.5f};
  s->mode = ModeConfig{Mode::kFedAvg, 0, 5, 1.0, edge_rounds};
  return s;
}

GradientPush EdgePush(const std::string& sender, int64_t sequence, int64_t edge_round,
                      std::vector<float> delta, int64_t samples) {
  GradientPush p = Push(sender, 0, std::move(delta), samples);
  p.sequence = sequence;
  p.edge_round = edge_round;
  return p;
}

AggregatorOptions EndToEnd(int workers) {
  AggregatorOptions o = Local(workers);
  o.ack_after_hq = true;
  return o;
}

// Three edge rounds of two workers, by hand (every value exact in float):
//   round 0: 10·{0.5, -1, 3} + 30·{1.5, 1, 5} = {50, 20, 180} over 40
//            copy {1, 2 | 0.5} -> {1 - 1.25, 2 - 0.5 | 4.5} = {-0.25, 1.5 | 4.5}
//   round 1: 20·{0.25, 0.5, 4} + 20·{-0.25, 0, 6} = {0, 10, 200} over 40
//            copy -> {-0.25, 1.25 | 5}
//   round 2: 8·{1, 1, 2} + 8·{0, 0.5, 4} = {8, 12, 48} over 16
//            copy -> {-0.75, 0.5 | 3}
// and HQ gets the copy's delta from {1, 2} weighted by all 96 samples:
// {1.75·96, 1.5·96 | 3·96} = {168, 144 | 288}, loss 0.5·96. The pushes of
// the first two rounds are answered when their round closes (no HQ yet);
// the last round's once HQ answered the aggregate.
TEST(AggregatorTest, EdgeRoundsMoveTheCopyAndSendHqOneAggregateOfAllTheirSamples) {
  Aggregator agg(EndToEnd(2));
  agg.PublishWeights(EdgeWeights(0, 3));
  const int64_t epoch = agg.LatestWeights()->edge_epoch;
  EXPECT_NE(epoch, 0);
  EXPECT_EQ(agg.HqWeights()->edge_epoch, 0);  // HQ's own, as the link holds them
  {                                           // another aggregator has another epoch
    Aggregator other(Local(1));
    other.PublishWeights(EdgeWeights(0, 3));
    EXPECT_NE(other.LatestWeights()->edge_epoch, epoch);
  }
  const std::vector<std::vector<float>> deltas = {{0.5f, -1, 3},  {1.5f, 1, 5}, {0.25f, 0.5f, 4},
                                                  {-0.25f, 0, 6}, {1, 1, 2},    {0, 0.5f, 4}};
  const std::vector<int64_t> samples = {10, 30, 20, 20, 8, 8};
  const std::vector<std::vector<float>> copies = {{-0.25f, 1.5f, 4.5f}, {-0.25f, 1.25f, 5}};
  std::vector<Answer> answers(6);
  for (int64_t e = 0; e < 3; ++e) {
    for (int k = 0; k < 2; ++k) {
      const int i = static_cast<int>(2 * e + k);
      agg.AcceptGradient(EdgePush(k == 0 ? "w0" : "w1", 1 + e, e, deltas[i], samples[i]),
                         answers[i].callback());
    }
    if (e < 2) {
      // The round closed here: its pushes are answered, the copy moved.
      for (int i = 0; i < 2 * (e + 1); ++i) {
        ASSERT_EQ(answers[i].calls, 1) << i;
        EXPECT_TRUE(answers[i].result.ok()) << i << ": " << answers[i].result.status();
      }
      std::shared_ptr<const WeightsSnapshot> w = agg.LatestWeights();
      EXPECT_EQ(w->version, 0);
      EXPECT_EQ(w->edge_round, e + 1);
      EXPECT_NE(w->edge_epoch, 0);  // this aggregator's line of rounds
      EXPECT_EQ(w->edge_epoch, epoch);
      EXPECT_THAT(w->weights, ::testing::ElementsAreArray(copies[e]));
      // HQ's weights stay what the link holds.
      EXPECT_EQ(agg.HqWeights()->edge_round, 0);
      EXPECT_THAT(agg.HqWeights()->weights, ElementsAre(1, 2, 0.5));
      EXPECT_EQ(agg.counters().rounds_closed, 0);
    }
  }
  EXPECT_EQ(answers[4].calls, 0);  // the last round waits for HQ
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 0);
  EXPECT_EQ(out->contributors, 2);
  EXPECT_EQ(out->edge_pushes, 4);
  EXPECT_EQ(out->total_samples, 96);
  EXPECT_DOUBLE_EQ(out->loss_sum, 48);
  EXPECT_THAT(out->sum, ElementsAre(168, 144, 288));
  ASSERT_EQ(out->contributor_list.size(), 2u);
  EXPECT_EQ(out->contributor_list[0].sequence, 3);
  agg.ReportForwarded(*out, PushResult{0, false, 1});
  for (int i : {4, 5}) {
    ASSERT_EQ(answers[i].calls, 1) << i;
    EXPECT_TRUE(answers[i].result.ok()) << answers[i].result.status();
  }
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_edge_applied, 4);
  EXPECT_EQ(c.edge_rounds_closed, 2);
  EXPECT_EQ(c.gradients_forwarded, 2);
  EXPECT_EQ(c.gradients_pending, 0);
  EXPECT_EQ(c.rounds_closed, 1);
  ExpectAccountingHolds(c);
  // HQ's next version starts the edge rounds afresh from its weights.
  agg.PublishWeights(EdgeWeights(1, 3));
  EXPECT_EQ(agg.LatestWeights()->version, 1);
  EXPECT_EQ(agg.LatestWeights()->edge_round, 0);
  EXPECT_THAT(agg.LatestWeights()->weights, ElementsAre(1, 2, 0.5));
}

// A delta on another round's copy is refused (an older round: stale; a
// newer one, another aggregator's: future), and so is a retry this
// aggregator has not seen (its first attempt may be in a copy already):
// the round then waits for that worker no more.
TEST(AggregatorTest, EdgeRoundsRefuseDeltasOnOtherCopiesAndRetriesTheyHaveNotSeen) {
  Aggregator agg(Local(2));
  agg.PublishWeights(EdgeWeights(0, 2));
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 1, 0, {1, 1, 1}, 4)).ok());
  absl::StatusOr<PushResult> future = agg.AcceptGradient(EdgePush("w1", 1, 1, {1, 1, 1}, 4));
  EXPECT_TRUE(absl::IsFailedPrecondition(future.status())) << future.status();
  GradientPush retry = EdgePush("w1", 2, 0, {9, 9, 9}, 4);
  retry.retry = true;
  absl::StatusOr<PushResult> refused = agg.AcceptGradient(retry);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  // w1 is done with round 0: it closed with w0's delta alone.
  std::shared_ptr<const WeightsSnapshot> w = agg.LatestWeights();
  EXPECT_EQ(w->edge_round, 1);
  EXPECT_THAT(w->weights, ElementsAre(0, 1, 1));
  absl::StatusOr<PushResult> stale = agg.AcceptGradient(EdgePush("w0", 3, 0, {1, 1, 1}, 4));
  EXPECT_TRUE(absl::IsFailedPrecondition(stale.status())) << stale.status();
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("future_version"), 1);
  EXPECT_EQ(c.gradients_dropped.at("edge_retry"), 1);
  EXPECT_EQ(c.gradients_dropped.at("stale_version"), 1);
  EXPECT_EQ(c.gradients_edge_applied, 1);
  ExpectAccountingHolds(c);
}

// A worker that joins in the middle of a version is not waited for by its
// edge rounds (it may have pushed the version's last round at another
// aggregator and wait for the next version), though its delta is taken
// when it comes in time.
TEST(AggregatorTest, EdgeRoundsWaitOnlyForTheWorkersOfTheVersionsStart) {
  Aggregator agg(Local(1));
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  agg.EndForming();
  agg.PublishWeights(EdgeWeights(0, 3));
  ASSERT_TRUE(agg.Heartbeat("w9", 1, false).ok());  // joins now
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 1, 0, {1, 1, 1}, 4)).ok());
  EXPECT_EQ(agg.LatestWeights()->edge_round, 1);  // not waiting for w9
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w9", 1, 1, {2, 2, 2}, 4)).ok());
  EXPECT_EQ(agg.LatestWeights()->edge_round, 1);  // w0 still to come
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 2, 1, {0, 0, 0}, 4)).ok());
  EXPECT_EQ(agg.LatestWeights()->edge_round, 2);
  // {1, 2 | 0.5} - {1, 1} | 1, then - (4·{2, 2} + 4·{0, 0})/8 | 1.
  EXPECT_THAT(agg.LatestWeights()->weights, ElementsAre(-1, 0, 1));
  // The next version's rounds wait for both.
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 3, 2, {0, 0, 0}, 4)).ok());
  std::optional<AggregatePush> out = agg.NextAggregate();  // (HQ takes it)
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_EQ(out->edge_pushes, 3);
  EXPECT_EQ(out->total_samples, 16);
  agg.ReportForwarded(*out, PushResult{0, false, 1});
  agg.PublishWeights(EdgeWeights(1, 3));
  GradientPush first = EdgePush("w0", 4, 0, {1, 1, 1}, 4);
  first.version = 1;
  ASSERT_TRUE(agg.AcceptGradient(first).ok());
  EXPECT_EQ(agg.LatestWeights()->edge_round, 0);
  ExpectAccountingHolds(agg.counters());
}

// HQ's next version (its round at HQ closed without this aggregator's
// aggregate) ends the edge rounds of the old one: what was open is
// superseded, and the workers get HQ's weights, not the old copy.
TEST(AggregatorTest, HqsNextVersionEndsTheEdgeRoundsOfTheOldOne) {
  Aggregator agg(Local(2));
  agg.PublishWeights(EdgeWeights(0, 3));
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 1, 0, {1, 1, 1}, 4)).ok());
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w1", 1, 0, {1, 1, 1}, 4)).ok());
  ASSERT_EQ(agg.LatestWeights()->edge_round, 1);
  ASSERT_TRUE(agg.AcceptGradient(EdgePush("w0", 2, 1, {1, 1, 1}, 4)).ok());
  agg.PublishWeights(EdgeWeights(1, 3));
  EXPECT_EQ(agg.LatestWeights()->version, 1);
  EXPECT_EQ(agg.LatestWeights()->edge_round, 0);
  EXPECT_THAT(agg.LatestWeights()->weights, ElementsAre(1, 2, 0.5));
  GradientPush late = EdgePush("w1", 2, 1, {1, 1, 1}, 4);
  absl::StatusOr<PushResult> refused = agg.AcceptGradient(late);
  EXPECT_FALSE(refused.ok());
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("superseded"), 1);
  EXPECT_EQ(c.gradients_edge_applied, 2);
  EXPECT_EQ(c.rounds_closed, 0);
  ExpectAccountingHolds(c);
}

TEST(AggregatorTest, AWorkerBeyondMaxWorkersIsRefusedUntilThereIsRoom) {
  SimulatedClock clock;
  AggregatorOptions o = Local(1, &clock);
  o.max_workers = 2;
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(0, 1));
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 0, {1}, 1)).ok());  // joins by pushing
  const absl::StatusOr<HeartbeatAnswer> third = agg.Heartbeat("w2", 1, false);
  EXPECT_TRUE(absl::IsResourceExhausted(third.status())) << third.status();
  EXPECT_NE(third.status().message().find("--max_workers"), std::string::npos);
  const absl::Status push = agg.AcceptGradient(Push("w2", 0, {1}, 1)).status();
  EXPECT_TRUE(absl::IsResourceExhausted(push)) << push;
  AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.live_workers, (std::vector<std::string>{"w0", "w1"}));
  EXPECT_EQ(c.gradients_dropped.at("membership_full"), 1);
  ExpectAccountingHolds(c);
  // Once a worker left, the next one gets in.
  ASSERT_TRUE(agg.Heartbeat("w0", 1, /*leaving=*/true).ok());
  ASSERT_TRUE(agg.Heartbeat("w2", 1, false).ok());
  EXPECT_EQ(agg.counters().live_workers, (std::vector<std::string>{"w1", "w2"}));
}

TEST(AggregatorTest, MaxWorkersDefaultsToTwiceTheExpectedAndCannotBeBelowThem) {
  Aggregator agg(Local(2));
  agg.PublishWeights(AsyncWeights(0, 1));
  for (const char* w : {"w0", "w1", "w2", "w3"}) ASSERT_TRUE(agg.Heartbeat(w, 1, false).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(agg.Heartbeat("w4", 1, false).status()));
  AggregatorOptions o = Local(2);
  o.max_workers = 1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateAggregatorOptions(o)));
}

TEST(AggregatorTest, CompressesItsAggregatesButNotARetryGoingOnAlone) {
  AggregatorOptions o = Local(2);
  o.compression.encoding = Encoding::kTopK;
  o.compression.topk_ratio = 0.25;  // 1 of 4 floats
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 4));
  GradientPush w0 = Push("w0", 0, {1, -3, 0, 0}, 1);
  w0.sequence = 100;
  GradientPush w1 = Push("w1", 0, {0, 0, 2, 0}, 1);
  w1.sequence = 200;
  w1.retry = true;
  ASSERT_TRUE(agg.AcceptGradient(w0).ok());
  ASSERT_TRUE(agg.AcceptGradient(w1).ok());
  std::optional<AggregatePush> single = agg.NextAggregate();
  ASSERT_TRUE(single.has_value());
  EXPECT_TRUE(single->single);
  EXPECT_EQ(single->encoded.encoding, Encoding::kFp32);
  EXPECT_THAT(single->sum, ElementsAre(0, 0, 2, 0));
  std::optional<AggregatePush> round = agg.NextAggregate();
  ASSERT_TRUE(round.has_value());
  EXPECT_EQ(round->encoded.encoding, Encoding::kTopK);
  EXPECT_EQ(round->encoded.nonzeros, 1);
  std::vector<float> dense(4);
  const EncodedValues v = round->values();
  ASSERT_TRUE(CheckEncodedValues(v).ok());
  DecodeInto(v, dense.data());
  EXPECT_THAT(dense, ElementsAre(0, -3, 0, 0));  // the rest waits in the residual
}

TEST(AggregatorTest, ARetriedPushGoesOnAloneAndCountsForItsRound) {
  Aggregator agg(Local(2));
  agg.PublishWeights(Weights(0, 1));
  ASSERT_TRUE(agg.AcceptGradient(Numbered("w0", 0, 100)).ok());
  // w1's first attempt may have reached HQ through another aggregator.
  ASSERT_TRUE(agg.AcceptGradient(Numbered("w1", 0, 200, /*retry=*/true)).ok());
  std::optional<AggregatePush> single = agg.NextAggregate();
  ASSERT_TRUE(single.has_value());
  EXPECT_TRUE(single->single);
  EXPECT_EQ(single->contributors, 1);
  ASSERT_EQ(single->contributor_list.size(), 1u);
  EXPECT_EQ(single->contributor_list[0].worker, "w1");
  EXPECT_EQ(single->contributor_list[0].sequence, 200);
  // The round is complete (w1 counted) and carries w0 alone.
  std::optional<AggregatePush> round = agg.NextAggregate();
  ASSERT_TRUE(round.has_value());
  EXPECT_FALSE(round->single);
  EXPECT_EQ(round->contributors, 1);
  ASSERT_EQ(round->contributor_list.size(), 1u);
  EXPECT_EQ(round->contributor_list[0].worker, "w0");
  EXPECT_EQ(agg.counters().gradients_sent_alone, 1);
}

TEST(AggregatorTest, APushIsAcknowledgedOnlyOnceHqAnsweredAndARetryGetsTheSameAnswer) {
  AggregatorOptions o;
  o.id = "agg-0";
  o.expected_workers = 1;  // ack_after_hq by default
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(0, 1));
  Answer first, retry;
  agg.AcceptGradient(Numbered("w0", 0, 7), first.callback());
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  // The worker's stream broke; it pushes again, and waits for the same fate.
  agg.AcceptGradient(Numbered("w0", 0, 7, /*retry=*/true), retry.callback());
  EXPECT_EQ(first.calls + retry.calls, 0);  // no answer before HQ's
  EXPECT_EQ(agg.counters().gradients_pending, 1);
  agg.ReportForwarded(*out, PushResult{0, false, 9});
  ASSERT_EQ(first.calls, 1);
  ASSERT_EQ(retry.calls, 1);
  ASSERT_TRUE(first.result.ok()) << first.result.status();
  EXPECT_FALSE(first.result->duplicate);
  EXPECT_EQ(first.result->newest_version, 9);
  ASSERT_TRUE(retry.result.ok()) << retry.result.status();
  EXPECT_TRUE(retry.result->duplicate);
  // A retry that comes after the answer gets it too.
  absl::StatusOr<PushResult> late = agg.AcceptGradient(Numbered("w0", 0, 7, /*retry=*/true));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_TRUE(late->duplicate);
  EXPECT_EQ(late->newest_version, 9);
  // HQ's refusal is the worker's refusal; a shutdown answers UNAVAILABLE.
  Answer refused, cut;
  agg.AcceptGradient(Numbered("w0", 0, 8), refused.callback());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  agg.ReportForwarded(*out, absl::FailedPreconditionError("staleness_exceeded"));
  ASSERT_EQ(refused.calls, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.result.status()));
  agg.AcceptGradient(Numbered("w0", 0, 9), cut.callback());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  agg.Shutdown();
  ASSERT_EQ(cut.calls, 1);
  EXPECT_TRUE(absl::IsUnavailable(cut.result.status())) << cut.result.status();
  const AggregatorCounters counters = agg.counters();
  EXPECT_EQ(counters.gradients_received, 5);
  EXPECT_EQ(counters.gradients_duplicate, 2);
  EXPECT_EQ(counters.gradients_forwarded, 2);
  EXPECT_EQ(counters.gradients_pending, 1);  // taken by NextAggregate, not reported
}

}  // namespace
}  // namespace hips
