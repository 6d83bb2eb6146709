#include "services/rounds/async_policy.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rounds/testing/fake_round_host.h"
#include "services/time/clock.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

class AsyncPolicyTest : public ::testing::Test {
 protected:
  void Start(RoundPolicyOptions::Tier tier, Mode mode = Mode::kAsync, int64_t staleness = 0) {
    options_.tier = tier;
    options_.mode.mode = mode;
    options_.mode.staleness = staleness;
    options_.num_floats = 2;
    policy_ = std::make_unique<AsyncPolicy>(options_, &host_);
    Begin(10);
  }
  void Begin(int64_t version) {
    VersionState v;
    v.version = version;
    v.mode = options_.mode;
    std::vector<ContributorRef> superseded;
    policy_->Begin(v, nullptr, &superseded);
    EXPECT_THAT(superseded, IsEmpty());  // a batch goes on across versions
    host_.set_newest(version);
  }
  Verdict Push(const Contribution& c) {
    return policy_->Admit(c, clock_.Now(), taker_.For(c.sender));
  }

  RoundPolicyOptions options_;
  SimulatedClock clock_;
  FakeRoundHost host_;
  Taker taker_;
  Contributions c_;
  std::unique_ptr<AsyncPolicy> policy_;
};

TEST_F(AsyncPolicyTest, AnAggregatorCoalescesTheGradientsOfAWindowWhateverTheirVersion) {
  options_.coalesce_capacity = 3;
  options_.coalesce_window = absl::Milliseconds(10);
  Start(RoundPolicyOptions::Tier::kAggregator);
  const absl::Time t0 = clock_.Now();
  ASSERT_EQ(Push(c_.Gradient("w0", 9, {1, 2}, 2)).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(policy_->CloseAt(), t0 + absl::Milliseconds(10));
  clock_.AdvanceBy(absl::Milliseconds(4));
  ASSERT_EQ(Push(c_.Gradient("w1", 10, {1, 1})).kind, Verdict::Kind::kTaken);
  policy_->Poll(clock_.Now());
  EXPECT_THAT(host_.outputs(), IsEmpty());
  clock_.AdvanceBy(absl::Milliseconds(6));
  policy_->Poll(clock_.Now());
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& o = host_.outputs()[0];
  EXPECT_EQ(o.kind, RoundOutput::Kind::kBatch);
  EXPECT_EQ(o.version, 9);  // the oldest
  EXPECT_THAT(o.versions, ElementsAre(Pair(9, 1), Pair(10, 1)));
  EXPECT_THAT(o.sum, ElementsAre(3, 5));
  EXPECT_EQ(o.total_samples, 3);
  EXPECT_THAT(RefWorkers(o), ElementsAre("w0", "w1"));
  EXPECT_EQ(policy_->CloseAt(), absl::InfiniteFuture());
}

TEST_F(AsyncPolicyTest, AFullBatchOrASendersSecondGradientGoesOnAtOnce) {
  options_.coalesce_capacity = 2;
  options_.coalesce_window = absl::Seconds(1);
  Start(RoundPolicyOptions::Tier::kAggregator);
  ASSERT_EQ(Push(c_.Gradient("w0", 10, {1, 1})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Push(c_.Gradient("w0", 10, {2, 2})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);  // the batch so far: w0's first
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(1, 1));
  ASSERT_EQ(Push(c_.Gradient("w1", 10, {3, 3})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 2u);  // two senders fill it
  EXPECT_THAT(host_.outputs()[1].sum, ElementsAre(5, 5));
  EXPECT_THAT(host_.outputs()[1].versions, ElementsAre(Pair(10, 2)));

  // Without a window each gradient goes on alone.
  options_.coalesce_window = absl::ZeroDuration();
  policy_ = std::make_unique<AsyncPolicy>(options_, &host_);
  Begin(10);
  ASSERT_EQ(Push(c_.Gradient("w2", 10, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(host_.outputs().size(), 3u);
}

TEST_F(AsyncPolicyTest, SspRefusesAGradientStalerThanTheBoundAtTheNewestVersionKnown) {
  Start(RoundPolicyOptions::Tier::kAggregator, Mode::kSsp, /*staleness=*/2);
  Begin(11);
  host_.set_newest(13);  // HQ's answers say it moved on
  EXPECT_EQ(Push(c_.Gradient("w0", 10, {1, 1})).refusal->reason, DropReason::kStalenessExceeded);
  EXPECT_EQ(Push(c_.Gradient("w0", 11, {1, 1})).kind, Verdict::Kind::kTaken);
  // Plain async takes any staleness.
  Start(RoundPolicyOptions::Tier::kAggregator, Mode::kAsync);
  host_.set_newest(1000);
  EXPECT_EQ(Push(c_.Gradient("w0", 10, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(Push(c_.Gradient("w0", 11, {1, 1})).refusal->reason, DropReason::kFutureVersion);
}

TEST_F(AsyncPolicyTest, HqAppliesEachAggregateAsItArrivedWithItsGradientsStaleness) {
  Start(RoundPolicyOptions::Tier::kHq);
  Contribution a = c_.Gradient("agg-0", 8, {6, 9});
  a.scale = 1;
  a.samples = 3;
  a.contributors = 3;
  a.versions = {{8, 1}, {10, 2}};
  ASSERT_EQ(Push(a).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& o = host_.outputs()[0];
  EXPECT_EQ(o.kind, RoundOutput::Kind::kBatch);
  EXPECT_TRUE(o.sum.empty());
  ASSERT_TRUE(o.values.has_value());  // read in place
  EXPECT_THAT(o.staleness, ElementsAre(Pair(0, 2), Pair(2, 1)));
  std::vector<float> mean(2);
  RoundMeanInto(o, absl::MakeSpan(mean));
  EXPECT_THAT(mean, ElementsAre(2, 3));
  // Versions that do not add up, or lie outside [version, newest].
  a.versions = {{8, 1}, {10, 1}};
  EXPECT_EQ(Push(a).refusal->reason, DropReason::kInvalid);
  a.versions = {{8, 1}, {11, 2}};
  a.version = 8;
  EXPECT_EQ(Push(a).refusal->reason, DropReason::kInvalid);
  a.versions = {{7, 1}, {10, 2}};
  EXPECT_EQ(Push(a).refusal->reason, DropReason::kInvalid);
  EXPECT_EQ(host_.outputs().size(), 1u);
}

TEST_F(AsyncPolicyTest, HqScalesTheRateByStalenessSamplesAndMomentum) {
  options_.hq.base = SgdSettings{0.9, true, 0.0};
  options_.hq.lr_reference_samples = 256;
  options_.hq.staleness_lr = StalenessScaling::kSqrt;
  options_.hq.async_momentum = 0.5;
  Start(RoundPolicyOptions::Tier::kHq);
  const SgdSettings wanted = policy_->StepSettings(options_.hq.base);
  EXPECT_EQ(wanted, (SgdSettings{0.5, true, 0.0}));
  RoundOutput out;
  out.contributors = 3;
  out.total_samples = 128;
  out.staleness = {{0, 2}, {3, 1}};
  const double factor = (2 * 1.0 + 1 / std::sqrt(4.0)) / 3;
  EXPECT_DOUBLE_EQ(policy_->StepRate(out, 0.05, wanted),
                   0.05 * (0.5 / 0.1) * (128.0 / 256) * factor);
  options_.hq.async_momentum = -1;  // the optimizer's own
  Start(RoundPolicyOptions::Tier::kHq);
  EXPECT_EQ(policy_->StepSettings(options_.hq.base), options_.hq.base);
}

TEST_F(AsyncPolicyTest, ReleaseEmptiesTheBatch) {
  host_.set_live({"w0", "w1"});
  options_.coalesce_capacity = 4;
  options_.coalesce_window = absl::Seconds(1);
  Start(RoundPolicyOptions::Tier::kAggregator);
  ASSERT_EQ(Push(c_.Gradient("w0", 10, {1, 1})).kind, Verdict::Kind::kTaken);
  // A batch waits for its window, never for anyone.
  EXPECT_TRUE(policy_->WaitingFor().empty());
  EXPECT_EQ(policy_->Release().size(), 1u);
  EXPECT_EQ(policy_->CloseAt(), absl::InfiniteFuture());
  clock_.AdvanceBy(absl::Seconds(2));
  policy_->Poll(clock_.Now());
  EXPECT_THAT(host_.outputs(), IsEmpty());
}

}  // namespace
}  // namespace hips
