#include "aggregator/aggregator.h"

#include <memory>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::ElementsAre;

std::shared_ptr<const WeightsSnapshot> Weights(int64_t version, size_t n, bool done = false) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->layout = *ModelLayout::Create({{"w", {static_cast<int64_t>(n)}}});
  s->weights.assign(n, 0.25f);
  s->training_done = done;
  return s;
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
  Aggregator agg({"agg-0", 2});
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
  Aggregator agg({"agg-0", 2});
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
  Aggregator agg({"agg-0", 1});
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
  Aggregator agg({"agg-0", 1});
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

}  // namespace
}  // namespace hips
