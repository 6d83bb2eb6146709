#include "services/rounds/sync_policy.h"

#include <limits>
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

RoundPolicyOptions SyncOptions(
    RoundPolicyOptions::Tier tier = RoundPolicyOptions::Tier::kAggregator) {
  RoundPolicyOptions o;
  o.tier = tier;
  o.mode.mode = Mode::kSync;
  o.num_floats = 2;
  return o;
}

VersionState At(int64_t version, bool done = false) {
  VersionState v;
  v.version = version;
  v.training_done = done;
  return v;
}

class SyncPolicyTest : public ::testing::Test {
 protected:
  void Start(RoundPolicyOptions options, int64_t version = 3) {
    policy_ = std::make_unique<SyncPolicy>(std::move(options), &host_);
    std::vector<ContributorRef> superseded;
    policy_->Begin(At(version), nullptr, &superseded);
    EXPECT_THAT(superseded, IsEmpty());
  }
  Verdict Push(const Contribution& c) {
    return policy_->Admit(c, clock_.Now(), taker_.For(c.sender));
  }

  SimulatedClock clock_;
  FakeRoundHost host_;
  Taker taker_;
  Contributions c_;
  std::unique_ptr<SyncPolicy> policy_;
};

TEST_F(SyncPolicyTest, ARoundClosesWhenEveryLiveWorkerIsInWithTheSampleWeightedSum) {
  host_.set_live({"w0", "w1"});
  Start(SyncOptions());
  EXPECT_EQ(Push(c_.Gradient("w0", 3, {1, 2}, /*samples=*/2)).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs(), IsEmpty());
  EXPECT_EQ(Push(c_.Gradient("w1", 3, {3, 4}, /*samples=*/1)).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& o = host_.outputs()[0];
  EXPECT_EQ(o.kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(o.version, 3);
  EXPECT_THAT(o.sum, ElementsAre(2 * 1 + 3, 2 * 2 + 4));  // Σ n_i·g_i
  EXPECT_EQ(o.total_samples, 3);
  EXPECT_EQ(o.contributors, 2);
  EXPECT_DOUBLE_EQ(o.loss_sum, 1.5);
  EXPECT_THAT(o.versions, ElementsAre(std::pair<const int64_t, int64_t>(3, 2)));
  EXPECT_THAT(o.staleness, ElementsAre(std::pair<const int64_t, int64_t>(0, 2)));
  EXPECT_THAT(RefWorkers(o), ElementsAre("w0", "w1"));
  EXPECT_THAT(taker_.taken(), ElementsAre("w0", "w1"));
  // A late gradient of the closed round is refused, never summed elsewhere.
  Verdict late = Push(c_.Gradient("w2", 3, {5, 6}));
  EXPECT_EQ(late.kind, Verdict::Kind::kRefused);
  EXPECT_EQ(late.refusal->reason, DropReason::kRoundClosed);
}

TEST_F(SyncPolicyTest, WaitingForNamesTheLiveMembersNotYetIn) {
  host_.set_live({"w2", "w0", "w1"});
  Start(SyncOptions());
  EXPECT_THAT(policy_->WaitingFor(), ElementsAre("w0", "w1", "w2"));
  ASSERT_EQ(Push(c_.Gradient("w1", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(policy_->WaitingFor(), ElementsAre("w0", "w2"));
  // One the tier does not wait for (an aggregator without workers) is not
  // named; one whose gradient was refused is done.
  host_.set_waits_for([](const std::string& id) { return id != "w2"; });
  EXPECT_THAT(policy_->WaitingFor(), ElementsAre("w0"));
  policy_->Refused("w0", 3, DropReason::kNonFinite, clock_.Now());
  EXPECT_THAT(policy_->WaitingFor(), IsEmpty());  // the round closed
  ASSERT_EQ(host_.outputs().size(), 1u);
  // After training, nobody is waited for.
  std::vector<ContributorRef> superseded;
  policy_->Begin(At(4, /*done=*/true), nullptr, &superseded);
  EXPECT_THAT(policy_->WaitingFor(), IsEmpty());
}

TEST_F(SyncPolicyTest, RefusesOtherVersionsAndAnswersARepeatAsADuplicate) {
  host_.set_live({"w0", "w1"});
  Start(SyncOptions());
  Verdict future = Push(c_.Gradient("w0", 4, {1, 1}));
  EXPECT_EQ(future.refusal->reason, DropReason::kFutureVersion);
  ASSERT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  // w0 again (it restarted and computed it again): not summed twice.
  EXPECT_EQ(Push(c_.Gradient("w0", 3, {7, 7})).kind, Verdict::Kind::kDuplicate);
  EXPECT_THAT(taker_.taken(), ElementsAre("w0"));
  Verdict bad = Push(c_.Gradient("w1", 3, {1, std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(bad.refusal->reason, DropReason::kNonFinite);
  EXPECT_THAT(host_.outputs(), IsEmpty());
  // The next version: w1's gradient of version 3 is stale, w0's a
  // duplicate of the previous round.
  std::vector<ContributorRef> superseded;
  policy_->Begin(At(4), nullptr, &superseded);
  EXPECT_THAT(superseded.size(), 1u);  // w0's, summed in a round HQ went on without
  EXPECT_EQ(Push(c_.Gradient("w1", 3, {1, 1})).refusal->reason, DropReason::kStaleVersion);
  EXPECT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kDuplicate);
  // After training nothing is taken in.
  policy_->Begin(At(5, /*done=*/true), nullptr, &superseded);
  EXPECT_EQ(Push(c_.Gradient("w0", 5, {1, 1})).refusal->reason, DropReason::kTrainingDone);
}

TEST_F(SyncPolicyTest, ADeadlineClosesTheRoundWithAQuorum) {
  host_.set_live({"w0", "w1", "w2"});
  RoundPolicyOptions o = SyncOptions();
  o.quorum = 2;
  o.round_deadline = absl::Milliseconds(20);
  Start(o);
  const absl::Time t0 = clock_.Now();
  ASSERT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(policy_->CloseAt(), absl::InfiniteFuture());  // no quorum yet
  clock_.AdvanceBy(absl::Milliseconds(5));
  ASSERT_EQ(Push(c_.Gradient("w1", 3, {2, 2})).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(policy_->CloseAt(), t0 + absl::Milliseconds(20));
  policy_->Poll(t0 + absl::Milliseconds(19));
  EXPECT_THAT(host_.outputs(), IsEmpty());
  clock_.AdvanceBy(absl::Milliseconds(15));
  policy_->Poll(clock_.Now());
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(3, 3));
  EXPECT_EQ(Push(c_.Gradient("w2", 3, {9, 9})).refusal->reason, DropReason::kRoundClosed);
}

TEST_F(SyncPolicyTest, ALateGradientFindsItsRoundClosedAtItsDeadlineFirst) {
  host_.set_live({"w0", "w1"});
  RoundPolicyOptions o = SyncOptions();
  o.round_deadline = absl::Milliseconds(20);
  Start(o);
  ASSERT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  clock_.Jump(absl::Milliseconds(30));  // the timer has not run yet
  EXPECT_EQ(Push(c_.Gradient("w1", 3, {2, 2})).refusal->reason, DropReason::kRoundClosed);
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_EQ(host_.outputs()[0].contributors, 1);
}

TEST_F(SyncPolicyTest, AWorkerThatLeavesOrAFormingTierChangesWhenTheRoundIsComplete) {
  host_.set_live({"w0", "w1"});
  host_.set_forming(true);
  Start(SyncOptions());
  ASSERT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Push(c_.Gradient("w1", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs(), IsEmpty());  // a third expected worker has not joined
  host_.set_forming(false);
  policy_->MembersChanged();
  ASSERT_EQ(host_.outputs().size(), 1u);

  std::vector<ContributorRef> superseded;
  policy_->Begin(At(4), nullptr, &superseded);
  ASSERT_EQ(Push(c_.Gradient("w0", 4, {1, 1})).kind, Verdict::Kind::kTaken);
  host_.set_live({"w0"});  // w1 left, or its lease ran out
  policy_->MembersChanged();
  ASSERT_EQ(host_.outputs().size(), 2u);
  EXPECT_EQ(host_.outputs()[1].contributors, 1);
  // With nobody in, nothing closes.
  policy_->Begin(At(5), nullptr, &superseded);
  host_.set_live({});
  policy_->Poll(clock_.Now());
  EXPECT_EQ(host_.outputs().size(), 2u);
}

TEST_F(SyncPolicyTest, ARetryGoesOnAloneAndCountsForItsWorkersRound) {
  host_.set_live({"w0", "w1"});
  Start(SyncOptions());
  Contribution retry = c_.Gradient("w0", 3, {1, 2}, 2);
  retry.retry = true;
  ASSERT_EQ(Push(retry).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_EQ(host_.outputs()[0].kind, RoundOutput::Kind::kAlone);
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(2, 4));
  EXPECT_THAT(RefWorkers(host_.outputs()[0]), ElementsAre("w0"));
  ASSERT_EQ(Push(c_.Gradient("w1", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 2u);  // w0 is covered: the round closes
  EXPECT_EQ(host_.outputs()[1].kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(host_.outputs()[1].contributors, 1);
  EXPECT_THAT(RefWorkers(host_.outputs()[1]), ElementsAre("w1"));
}

TEST_F(SyncPolicyTest, HqMovesOnWhenEveryAggregateWasRefused) {
  host_.set_live({"agg-0", "agg-1"});
  Start(SyncOptions(RoundPolicyOptions::Tier::kHq), 7);
  policy_->Refused("agg-0", 7, DropReason::kInvalid, clock_.Now());
  EXPECT_THAT(host_.outputs(), IsEmpty());  // agg-1 may still send
  policy_->Refused("agg-1", 7, DropReason::kNonFinite, clock_.Now());
  // Nothing to apply and nobody left to wait for: the version moves on
  // with nothing in it (training it again would wait for aggregators that
  // have moved on).
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_EQ(host_.outputs()[0].kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(host_.outputs()[0].version, 7);
  EXPECT_EQ(host_.outputs()[0].contributors, 0);
  // A refusal that is not about the content (a stale version) does not end
  // the sender's part: the next round still waits for it.
  std::vector<ContributorRef> superseded;
  policy_->Begin(At(8), nullptr, &superseded);
  policy_->Refused("agg-1", 8, DropReason::kStaleVersion, clock_.Now());
  Contribution sum = c_.Gradient("agg-0", 8, {4, 4});
  sum.scale = 1;
  sum.samples = 4;
  sum.contributors = 2;
  sum.members = {"w0", "w2"};
  ASSERT_EQ(Push(sum).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(host_.outputs().size(), 1u);
  // An aggregator without workers is not waited for (the host says).
  host_.set_waits_for([](const std::string& id) { return id != "agg-1"; });
  policy_->MembersChanged();
  ASSERT_EQ(host_.outputs().size(), 2u);
  EXPECT_EQ(host_.outputs()[1].version, 8);
  EXPECT_THAT(host_.outputs()[1].sum, ElementsAre(4, 4));
  EXPECT_EQ(host_.outputs()[1].contributors, 2);
}

TEST_F(SyncPolicyTest, HqStepsWithTheScheduleAndKeepsLrOverOneMinusMomentum) {
  RoundPolicyOptions o = SyncOptions(RoundPolicyOptions::Tier::kHq);
  o.hq.base = SgdSettings{0.9, false, 0.0};
  Start(o);
  RoundOutput out;
  EXPECT_DOUBLE_EQ(policy_->StepRate(out, 0.05, SgdSettings{0.9, false, 0}), 0.05);
  // Momentum left at 0.5 by async: the rate keeps lr / (1 - momentum).
  EXPECT_DOUBLE_EQ(policy_->StepRate(out, 0.05, SgdSettings{0.5, false, 0}), 0.05 * 0.5 / 0.1);
  EXPECT_EQ(policy_->StepSettings(o.hq.base), o.hq.base);
  EXPECT_EQ(policy_->WorkersSgd(0.05), LocalSgd());
  EXPECT_FALSE(policy_->StepsOnDeltas());
}

TEST_F(SyncPolicyTest, HqAppliesTheClosedRoundBeforeALateAggregateIsLookedAt) {
  // HQ publishes its next version from Emit (Begin, re-entered): a late
  // aggregate then belongs to an older version.
  host_.set_live({"agg-0", "agg-1"});
  RoundPolicyOptions o = SyncOptions(RoundPolicyOptions::Tier::kHq);
  o.round_deadline = absl::Milliseconds(10);
  Start(o, 7);
  host_.set_on_emit([this](const RoundOutput& out) {
    std::vector<ContributorRef> superseded;
    policy_->Begin(At(out.version + 1), nullptr, &superseded);
  });
  Contribution a0 = c_.Gradient("agg-0", 7, {1, 1});
  a0.members = {"w0"};
  ASSERT_EQ(Push(a0).kind, Verdict::Kind::kTaken);
  clock_.Jump(absl::Milliseconds(10));
  Contribution a1 = c_.Gradient("agg-1", 7, {1, 1});
  a1.members = {"w1"};
  EXPECT_EQ(Push(a1).refusal->reason, DropReason::kStaleVersion);
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_EQ(policy_->round().version(), 8);
}

TEST_F(SyncPolicyTest, ReleaseHandsBackWhatTheOpenRoundHolds) {
  host_.set_live({"w0", "w1"});
  Start(SyncOptions());
  ASSERT_EQ(Push(c_.Gradient("w0", 3, {1, 1})).kind, Verdict::Kind::kTaken);
  std::vector<ContributorRef> held = policy_->Release();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].worker, "w0");
  EXPECT_THAT(policy_->Release(), IsEmpty());
}

}  // namespace
}  // namespace hips
