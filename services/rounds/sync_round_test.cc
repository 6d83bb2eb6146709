#include "services/rounds/sync_round.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/rounds/coalescing_batch.h"
#include "services/types/consistency.h"

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

TEST(GradientAccumulatorTest, RefusesNonFiniteInputsAndKeepsTheSum) {
  GradientAccumulator acc(3);
  const std::vector<float> ok = {1, -2, 3};
  ASSERT_TRUE(acc.Add(ok, 2.0f, 2, 0, 1).ok());
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    const std::vector<float> v = {0, bad, 0};
    const absl::Status s = acc.Add(v, 1.0f, 1, 0, 1);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("at float 1"));
  }
  EXPECT_THAT(acc.sum(), ElementsAre(2, -4, 6));
}

TEST(GradientAccumulatorTest, TheFastPathAndTheCheckedPathSumTheSame) {
  // Large magnitudes take the checked path (they could overflow), small ones
  // the fused one; both give the exact float sums, and a refused add in
  // between leaves the sum as it was.
  GradientAccumulator acc(2);
  const std::vector<float> huge = {1e38f, -1e38f}, small = {0.5f, 0.25f};
  ASSERT_TRUE(acc.Add(small, 4.0f, 4, 0, 1).ok());  // fused
  ASSERT_TRUE(acc.Add(huge, 2.0f, 2, 0, 1).ok());   // checked: 2e38 is near the range
  EXPECT_FALSE(acc.Add(huge, 2.0f, 2, 0, 1).ok());  // 4e38 overflows: refused
  ASSERT_TRUE(acc.Add(small, 4.0f, 4, 0, 1).ok());
  EXPECT_THAT(acc.sum(), ElementsAre(2.0f + 2e38f + 2.0f, 1.0f - 2e38f + 1.0f));
  acc.Reset();
  ASSERT_TRUE(acc.Add(small, 1.0f, 1, 0, 1).ok());  // the bound was reset too
  EXPECT_THAT(acc.sum(), ElementsAre(0.5f, 0.25f));
}

TEST(ChunkCodecTest, MaxAbsBitsOrdersMagnitudesAndFlagsNonFinite) {
  auto max_abs = [](std::vector<float> v) {
    const uint32_t bits = MaxAbsBits(v);
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  };
  EXPECT_EQ(max_abs({}), 0.0f);
  EXPECT_EQ(max_abs({1.5f, -7.25f, 3.0f}), 7.25f);
  EXPECT_EQ(max_abs({-0.0f, 1e-40f}), 1e-40f);  // denormals order too
  EXPECT_GE(MaxAbsBits(std::vector<float>{1, std::nanf("")}), kNonFiniteBits);
  EXPECT_GE(MaxAbsBits(std::vector<float>{-std::numeric_limits<float>::infinity()}),
            kNonFiniteBits);
  EXPECT_LT(MaxAbsBits(std::vector<float>{std::numeric_limits<float>::max()}), kNonFiniteBits);
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
  EXPECT_EQ(reason, DropReason::kNonFinite);
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

TEST(SyncRoundTest, ClosesAtItsDeadlineOnlyWithAQuorum) {
  SyncRound round(1, 3, /*quorum=*/2, absl::Seconds(10));
  round.Open(0);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(round.CloseAt(), absl::InfiniteFuture());  // nothing arrived yet
  const std::vector<float> a = {1};
  DropReason reason;
  ASSERT_TRUE(round.Add(From("w0", 0, a, 1), &reason, t0).ok());
  EXPECT_EQ(round.CloseAt(), absl::InfiniteFuture());  // no quorum yet
  EXPECT_FALSE(round.CloseIfDue(t0 + absl::Seconds(20)));
  // The quorum arrives after the deadline: the round closes right there.
  ASSERT_TRUE(round.Add(From("w1", 0, a, 1), &reason, t0 + absl::Seconds(20)).ok());
  EXPECT_EQ(round.state(), SyncRound::State::kClosed);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      round.Add(From("w2", 0, a, 1), &reason, t0 + absl::Seconds(21)).status()));
  EXPECT_EQ(reason, DropReason::kRoundClosed);
  EXPECT_EQ(round.accumulator().contributors(), 2);

  round.Open(1);
  ASSERT_TRUE(round.Add(From("w0", 1, a, 1), &reason, t0).ok());
  ASSERT_TRUE(round.Add(From("w1", 1, a, 1), &reason, t0 + absl::Seconds(1)).ok());
  EXPECT_EQ(round.CloseAt(), t0 + absl::Seconds(10));  // counted from the first
  EXPECT_FALSE(round.CloseIfDue(t0 + absl::Seconds(9)));
  EXPECT_TRUE(round.CloseIfDue(t0 + absl::Seconds(10)));
  EXPECT_FALSE(round.CloseIfDue(t0 + absl::Seconds(11)));  // once
}

TEST(SyncRoundTest, WithoutADeadlineWaitsForEveryContribution) {
  SyncRound round(1, 2, /*quorum=*/1);
  round.Open(0);
  const std::vector<float> a = {1};
  DropReason reason;
  ASSERT_TRUE(round.Add(From("w0", 0, a, 1), &reason).ok());
  EXPECT_FALSE(round.CloseIfDue(absl::InfiniteFuture() - absl::Seconds(1)));
  EXPECT_EQ(round.state(), SyncRound::State::kOpen);
}

TEST(CoalescingBatchTest, SumsAnyVersionsAndCountsThem) {
  CoalescingBatch batch(2, /*capacity=*/2, absl::Seconds(5));
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.CloseAt(), absl::InfiniteFuture());
  const absl::Time t0 = absl::FromUnixSeconds(50);
  const std::vector<float> a = {1, 2}, b = {3, 4};
  Contribution c = From("w0", 7, a, 2);
  c.scale = 2;
  ASSERT_TRUE(batch.Add(c, t0).ok());
  Contribution d = From("w1", 5, b, 1);
  ASSERT_TRUE(batch.Add(d, t0 + absl::Seconds(1)).ok());
  EXPECT_TRUE(batch.full());
  EXPECT_TRUE(batch.HasSender("w1"));
  EXPECT_EQ(batch.CloseAt(), t0 + absl::Seconds(5));
  EXPECT_EQ(batch.oldest_version(), 5);
  EXPECT_EQ(batch.versions(), (std::map<int64_t, int64_t>{{5, 1}, {7, 1}}));
  EXPECT_THAT(batch.accumulator().sum(), ElementsAre(5, 8));
  EXPECT_EQ(batch.accumulator().total_samples(), 3);
  batch.Reset();
  EXPECT_TRUE(batch.empty());
  EXPECT_THAT(batch.accumulator().sum(), ElementsAre(0, 0));
}

TEST(ConsistencyTest, ModesParseValidateAndDescribe) {
  EXPECT_EQ(*ParseMode("async"), Mode::kAsync);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseMode("eventual").status()));
  EXPECT_EQ(*MakeModeConfig("ssp", 3), (ModeConfig{Mode::kSsp, 3}));
  EXPECT_EQ(*MakeModeConfig("sync", 3), (ModeConfig{Mode::kSync, 0}));  // ignored
  EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("ssp", -1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig({Mode::kAsync, 1})));
  EXPECT_EQ(DescribeMode({Mode::kSsp, 2}), "ssp(2)");
  EXPECT_EQ(DescribeMode({Mode::kSync, 0}), "sync");
}

TEST(ConsistencyTest, StalenessHistogramKeepsTheExactMaximum) {
  StalenessHistogram h;
  h.Record(0, 3);
  h.Record(2, 1);
  h.Record(1000, 2);
  EXPECT_EQ(h.counts()[0], 3);
  EXPECT_EQ(h.counts()[2], 1);
  EXPECT_EQ(h.counts().back(), 2);
  EXPECT_EQ(h.max(), 1000);
  EXPECT_EQ(h.total(), 6);
}

TEST(SyncRoundMembersTest, AnAggregateHoldsEachWorkerOnceAndMarksItsSenderDone) {
  SyncRound round(1, /*expected_contributions=*/0, /*quorum=*/1);
  round.Open(4);
  const std::vector<float> one = {1};
  Contribution a;
  a.sender = "agg-0";
  a.members = {"w0", "w2"};
  a.version = 4;
  a.samples = 2;
  a.contributors = 2;
  a.values = one;
  DropReason reason;
  ASSERT_EQ(*round.Add(a, &reason), SyncRound::AddOutcome::kAccepted);
  EXPECT_TRUE(round.HasSender("agg-0"));
  // A retried gradient of w2 sent on alone by agg-1: already in.
  Contribution single = a;
  single.sender = "agg-1";
  single.members = {"w2"};
  single.contributors = 1;
  single.completes_sender = false;
  EXPECT_EQ(*round.Add(single, &reason), SyncRound::AddOutcome::kDuplicate);
  EXPECT_FALSE(round.HasSender("agg-1"));
  // agg-1's own aggregate repeats w2 next to a new w1: refused whole.
  Contribution partial = a;
  partial.sender = "agg-1";
  partial.members = {"w1", "w2"};
  EXPECT_FALSE(round.Add(partial, &reason).ok());
  EXPECT_EQ(reason, DropReason::kRepeatedContributor);
  EXPECT_TRUE(round.HasSender("agg-1"));  // its part of the round is over
  EXPECT_EQ(round.accumulator().contributors(), 2);
  // An empty aggregate (its gradients all went alone) only says "done".
  Contribution empty;
  empty.sender = "agg-2";
  empty.version = 4;
  empty.contributors = 0;
  ASSERT_TRUE(round.Add(empty, &reason).ok());
  EXPECT_TRUE(round.HasSender("agg-2"));
  EXPECT_THAT(round.covered().size(), 2u);
  EXPECT_EQ(round.state(), SyncRound::State::kOpen);  // expected 0: the owner closes
  round.Close();
  EXPECT_EQ(round.state(), SyncRound::State::kClosed);
}

}  // namespace
}  // namespace hips
