#include "aggregator/aggregator.h"

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/synchronization/notification.h"

namespace hips {
namespace {

// Options of an aggregator that acknowledges on acceptance: these tests
// play HQ themselves (NextAggregate), after the pushes returned.
AggregatorOptions Local(int workers) {
  AggregatorOptions o;
  o.id = "agg-0";
  o.expected_workers = workers;
  o.ack_after_hq = false;
  return o;
}

using ::testing::ElementsAre;

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

// received = duplicate + dropped + forwarded + pending
void ExpectAccountingHolds(const AggregatorCounters& c) {
  int64_t dropped = 0;
  for (const auto& [reason, n] : c.gradients_dropped) dropped += n;
  EXPECT_EQ(c.gradients_received,
            c.gradients_duplicate + dropped + c.gradients_forwarded + c.gradients_pending);
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
    EXPECT_TRUE(absl::IsUnavailable(
        agg.WaitForWeights(6, absl::Now() + absl::Seconds(60)).status()));
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

TEST(AggregatorTest, CoalescesGradientsOfAnyVersionWithinTheWindow) {
  AggregatorOptions o = Local(3);
  o.coalesce_window = absl::Hours(1);  // the test drives the clock
  Aggregator agg(o);
  agg.PublishWeights(AsyncWeights(5, 1));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1}, 1), t0).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 4, {1}, 2), t0 + absl::Minutes(1)).ok());
  agg.CloseDue(t0 + absl::Minutes(59));
  EXPECT_EQ(agg.counters().rounds_closed, 0);
  agg.CloseDue(t0 + absl::Hours(1));
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->version, 4);  // the oldest
  EXPECT_EQ(out->contributors, 2);
  EXPECT_EQ(out->contributor_versions, (std::map<int64_t, int64_t>{{4, 1}, {5, 1}}));
  EXPECT_THAT(out->sum, ElementsAre(3));
  // A sender's second gradient sends the batch so far; a full batch (every
  // worker in) goes at once.
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {1}, 1), t0).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 5, {2}, 1), t0).ok());
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_THAT(out->sum, ElementsAre(1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w1", 5, {3}, 1), t0).ok());
  ASSERT_TRUE(agg.AcceptGradient(Push("w2", 5, {4}, 1), t0).ok());
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
  AggregatorOptions o = Local(2);
  o.quorum_workers = 1;
  o.round_deadline = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 1));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(agg.AcceptGradient(Push("fast", 0, {1}, 2), t0).ok());
  agg.CloseDue(t0 + absl::Minutes(59));
  EXPECT_EQ(agg.counters().rounds_closed, 0);
  agg.CloseDue(t0 + absl::Hours(1));
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_THAT(out->sum, ElementsAre(2));
  const absl::Status late =
      agg.AcceptGradient(Push("slow", 0, {1}, 2), t0 + absl::Hours(2)).status();
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
  AggregatorOptions o = Local(2);
  o.quorum_workers = 1;
  o.round_deadline = absl::Hours(1);
  Aggregator agg(o);
  agg.PublishWeights(Weights(0, 1));
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(agg.AcceptGradient(Push("fast", 0, {1}, 2), t0).ok());
  const absl::Status late =
      agg.AcceptGradient(Push("slow", 0, {1}, 2), t0 + absl::Hours(2)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_EQ(agg.counters().gradients_dropped.at("round_closed"), 1);
}

TEST(AggregatorTest, PushesWaitWhileTheQueueTowardsHqIsFull) {
  Aggregator agg(Local(1));
  agg.PublishWeights(AsyncWeights(0, 1));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 1)).ok());  // queued
  absl::Notification pushed;
  std::thread second([&] {
    EXPECT_TRUE(agg.AcceptGradient(Push("w1", 0, {1}, 1)).ok());
    pushed.Notify();
  });
  EXPECT_FALSE(pushed.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  ASSERT_TRUE(agg.NextAggregate().has_value());  // room again
  pushed.WaitForNotification();
  second.join();
  // Shutdown counts what never left as dropped.
  agg.Shutdown();
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("shutdown"), 1);
  EXPECT_EQ(c.gradients_pending, 1);  // taken by NextAggregate, not reported
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
  Aggregator agg(Local(2));  // leases of 2 s
  agg.PublishWeights(Weights(0, 1));
  const absl::Time t0 = absl::Now();
  agg.Heartbeat("w0", 1, false, t0);
  agg.Heartbeat("w1", 2, false, t0);
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 0, {1}, 1), t0).ok());
  agg.Heartbeat("w0", 1, false, t0 + absl::Seconds(1.5));
  agg.CloseDue(t0 + absl::Seconds(1.9));
  EXPECT_EQ(agg.counters().rounds_closed, 0);  // w1 may still come
  agg.CloseDue(t0 + absl::Seconds(2));         // w1's lease ran out
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->contributors, 1);
  EXPECT_EQ(agg.counters().live_workers, std::vector<std::string>{"w0"});
  // w1 rejoins: the next round waits for it again, until it leaves.
  agg.PublishWeights(Weights(1, 1));
  agg.Heartbeat("w1", 3, false, t0 + absl::Seconds(2.5));
  ASSERT_TRUE(agg.AcceptGradient(Push("w0", 1, {1}, 1), t0 + absl::Seconds(2.5)).ok());
  EXPECT_EQ(agg.counters().rounds_closed, 1);
  agg.Heartbeat("w1", 3, /*leaving=*/true, t0 + absl::Seconds(2.6));
  EXPECT_EQ(agg.counters().rounds_closed, 2);
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
  absl::StatusOr<PushResult> first, retry;
  std::thread a([&] { first = agg.AcceptGradient(Numbered("w0", 0, 7)); });
  std::optional<AggregatePush> out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  // The worker's stream broke; it pushes again, and waits for the same fate.
  std::thread b([&] { retry = agg.AcceptGradient(Numbered("w0", 0, 7, /*retry=*/true)); });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(agg.counters().gradients_pending, 1);
  agg.ReportForwarded(*out, PushResult{0, false, 9});
  a.join();
  b.join();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate);
  EXPECT_EQ(first->newest_version, 9);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  // HQ's refusal is the worker's refusal; a shutdown answers UNAVAILABLE.
  std::thread c([&] { first = agg.AcceptGradient(Numbered("w0", 0, 8)); });
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  agg.ReportForwarded(*out, absl::FailedPreconditionError("staleness_exceeded"));
  c.join();
  EXPECT_TRUE(absl::IsFailedPrecondition(first.status()));
  std::thread d([&] { first = agg.AcceptGradient(Numbered("w0", 0, 9)); });
  out = agg.NextAggregate();
  ASSERT_TRUE(out.has_value());
  agg.Shutdown();
  d.join();
  EXPECT_TRUE(absl::IsUnavailable(first.status())) << first.status();
  const AggregatorCounters counters = agg.counters();
  EXPECT_EQ(counters.gradients_received, 4);
  EXPECT_EQ(counters.gradients_duplicate, 1);
  EXPECT_EQ(counters.gradients_forwarded, 2);
  EXPECT_EQ(counters.gradients_pending, 1);  // taken by NextAggregate, not reported
}

}  // namespace
}  // namespace hips
