#include "services/core/sync_round.h"

#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/core/gradient_accumulator.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;

TEST(GradientAccumulatorTest, SampleWeightedSumAndMeanMatchHandComputedValues) {
  GradientAccumulator acc(3);
  const std::vector<float> g1 = {1, 2, 3}, g2 = {4, 5, 6};
  ASSERT_TRUE(acc.Add(g1, 2.0f, 2, 1.5, 1).ok());
  ASSERT_TRUE(acc.Add(g2, 3.0f, 3, 2.5, 1).ok());
  // 2·[1,2,3] + 3·[4,5,6] = [14, 19, 24]; over 5 samples: [2.8, 3.8, 4.8].
  EXPECT_THAT(acc.sum(), ElementsAre(14, 19, 24));
  EXPECT_EQ(acc.total_samples(), 5);
  EXPECT_DOUBLE_EQ(acc.loss_sum(), 4.0);
  EXPECT_EQ(acc.contributors(), 2);
  std::vector<float> mean(3);
  acc.MeanInto(absl::MakeSpan(mean));
  EXPECT_THAT(mean, ElementsAre(FloatEq(2.8f), FloatEq(3.8f), FloatEq(4.8f)));
  acc.Reset();
  EXPECT_THAT(acc.sum(), ElementsAre(0, 0, 0));
  EXPECT_EQ(acc.total_samples(), 0);
}

TEST(GradientAccumulatorTest, RefusesWrongSizeAndSampleCount) {
  GradientAccumulator acc(2);
  const std::vector<float> three = {1, 2, 3}, two = {1, 2};
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(three, 1, 1, 0, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(two, 1, 0, 0, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(two, 1, int64_t{1} << 40, 0, 1)));
  EXPECT_THAT(acc.sum(), ElementsAre(0, 0));
}

TEST(GradientAccumulatorTest, RefusesFiniteInputsWhoseSumOverflowsAndKeepsTheSum) {
  GradientAccumulator acc(2);
  const std::vector<float> big = {3e38f, 1.0f};
  ASSERT_TRUE(acc.Add(big, 1.0f, 1, 0, 1).ok());
  // Finite, but 3e38 + 3e38 is not; and 1e37 scaled by 64 samples is not.
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(big, 1.0f, 1, 0, 1)));
  const std::vector<float> scaled = {0.0f, 1e37f};
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(scaled, 64.0f, 64, 0, 1)));
  // The loss total overflows too.
  const std::vector<float> zero = {0.0f, 0.0f};
  ASSERT_TRUE(acc.Add(zero, 1.0f, 1, 1e308, 1).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(acc.Add(zero, 1.0f, 1, 1e308, 1)));
  EXPECT_THAT(acc.sum(), ElementsAre(3e38f, 1.0f));
  EXPECT_EQ(acc.total_samples(), 2);
  EXPECT_DOUBLE_EQ(acc.loss_sum(), 1e308);
}

Contribution From(const std::string& sender, int64_t version, const std::vector<float>& v,
                  int64_t samples) {
  Contribution c;
  c.sender = sender;
  c.version = version;
  c.samples = samples;
  c.loss_sum = 0.5 * samples;
  c.scale = static_cast<float>(samples);
  c.values = v;
  return c;
}

TEST(SyncRoundTest, ClosesWhenEveryExpectedSenderContributed) {
  SyncRound round(2, 2);
  EXPECT_EQ(round.state(), SyncRound::State::kIdle);
  round.Open(7);
  const std::vector<float> a = {1, -1}, b = {3, 5};
  DropReason reason;
  ASSERT_EQ(*round.Add(From("w0", 7, a, 4), &reason), SyncRound::AddOutcome::kAccepted);
  EXPECT_EQ(round.state(), SyncRound::State::kOpen);
  ASSERT_EQ(*round.Add(From("w1", 7, b, 2), &reason), SyncRound::AddOutcome::kAccepted);
  EXPECT_EQ(round.state(), SyncRound::State::kClosed);
  // 4·[1,-1] + 2·[3,5] = [10, 6].
  EXPECT_THAT(round.accumulator().sum(), ElementsAre(10, 6));
  EXPECT_EQ(round.accumulator().total_samples(), 6);
}

TEST(SyncRoundTest, RepeatFromTheSameSenderIsADuplicateAndNotSummed) {
  SyncRound round(2, 3);
  round.Open(0);
  const std::vector<float> a = {1, 1};
  DropReason reason;
  ASSERT_EQ(*round.Add(From("w0", 0, a, 1), &reason), SyncRound::AddOutcome::kAccepted);
  ASSERT_EQ(*round.Add(From("w0", 0, a, 1), &reason), SyncRound::AddOutcome::kDuplicate);
  EXPECT_THAT(round.accumulator().sum(), ElementsAre(1, 1));
  EXPECT_EQ(round.received(), 1);
}

TEST(SyncRoundTest, ARetryOfThePreviousRoundIsADuplicateNotAStaleGradient) {
  SyncRound round(1, 1);
  round.Open(3);
  const std::vector<float> a = {2};
  DropReason reason;
  ASSERT_TRUE(round.Add(From("w0", 3, a, 1), &reason).ok());
  round.Open(4);  // the ack for version 3 was lost; w0 retries it
  EXPECT_EQ(*round.Add(From("w0", 3, a, 1), &reason), SyncRound::AddOutcome::kDuplicate);
  EXPECT_TRUE(absl::IsFailedPrecondition(round.Add(From("w1", 3, a, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kStaleVersion);
  EXPECT_THAT(round.accumulator().sum(), ElementsAre(0));
}

TEST(SyncRoundTest, RefusesOtherVersionsWithTheirReason) {
  SyncRound round(1, 2);
  const std::vector<float> a = {1};
  DropReason reason;
  EXPECT_TRUE(absl::IsFailedPrecondition(round.Add(From("w0", 0, a, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kFutureVersion);
  round.Open(5);
  EXPECT_TRUE(absl::IsFailedPrecondition(round.Add(From("w0", 4, a, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kStaleVersion);
  EXPECT_TRUE(absl::IsFailedPrecondition(round.Add(From("w0", 6, a, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kFutureVersion);
  EXPECT_EQ(round.received(), 0);
}

TEST(SyncRoundTest, RefusesANewSenderOnceClosed) {
  SyncRound round(1, 1);
  round.Open(1);
  const std::vector<float> a = {2};
  DropReason reason;
  ASSERT_TRUE(round.Add(From("w0", 1, a, 1), &reason).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(round.Add(From("w9", 1, a, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kRoundClosed);
  EXPECT_THAT(round.accumulator().sum(), ElementsAre(2));
}

TEST(SyncRoundTest, RefusesInvalidPayloadsWithoutSummingThem) {
  SyncRound round(2, 2);
  round.Open(0);
  DropReason reason;
  const std::vector<float> nan = {1, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_TRUE(absl::IsInvalidArgument(round.Add(From("w0", 0, nan, 1), &reason).status()));
  EXPECT_EQ(reason, DropReason::kInvalid);
  const std::vector<float> short_one = {1};
  EXPECT_TRUE(absl::IsInvalidArgument(round.Add(From("w0", 0, short_one, 1), &reason).status()));
  const std::vector<float> ok = {1, 2};
  EXPECT_TRUE(absl::IsInvalidArgument(round.Add(From("", 0, ok, 1), &reason).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(round.Add(From("w0", 0, ok, 0), &reason).status()));
  EXPECT_EQ(round.received(), 0);
  EXPECT_THAT(round.accumulator().sum(), ElementsAre(0, 0));
  // The refused sender can still contribute a valid gradient.
  EXPECT_TRUE(round.Add(From("w0", 0, ok, 1), &reason).ok());
}

}  // namespace
}  // namespace hips
