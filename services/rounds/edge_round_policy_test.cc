#include "services/rounds/edge_round_policy.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rounds/round_policies.h"
#include "services/rounds/testing/fake_round_host.h"
#include "services/time/clock.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::IsEmpty;

// Two parameters and one buffer (a BatchNorm running mean).
ModelLayout TwoParamsOneBuffer() {
  return *ModelLayout::Create({{"w", {2}, false}, {"bn.running_mean", {1}, true}});
}

class EdgeRoundPolicyTest : public ::testing::Test {
 protected:
  void Start(int64_t edge_rounds = 2) {
    RoundPolicyOptions o;
    o.tier = RoundPolicyOptions::Tier::kAggregator;
    o.mode.mode = Mode::kFedAvg;
    o.mode.edge_rounds = edge_rounds;
    o.num_floats = 3;
    o.id = "agg-0";
    o.edge_epoch = 77;
    policy_ = MakeRoundPolicy(o, &host_);
    ASSERT_NE(dynamic_cast<EdgeRoundPolicy*>(policy_.get()), nullptr);
    auto hq = std::make_shared<WeightsSnapshot>();
    hq->version = 5;
    hq->layout = TwoParamsOneBuffer();
    hq->weights = {1, 2, 0.5};
    VersionState v;
    v.version = 5;
    v.mode = o.mode;
    std::vector<ContributorRef> superseded;
    served_ = policy_->Begin(v, hq, &superseded);
  }
  Verdict Push(const std::string& sender, int64_t edge_round, const std::vector<float>& delta,
               int64_t samples, bool retry = false) {
    Contribution c = c_.Gradient(sender, 5, delta, samples);
    c.edge_round = edge_round;
    c.retry = retry;
    return policy_->Admit(c, clock_.Now(), taker_.For(sender, 5));
  }

  SimulatedClock clock_;
  FakeRoundHost host_;
  Taker taker_;
  Contributions c_;
  std::unique_ptr<RoundPolicy> policy_;
  std::shared_ptr<const WeightsSnapshot> served_;
};

TEST_F(EdgeRoundPolicyTest, RoundsMoveTheCopyAndTheLastSendsItsDeltaWeightedByEverySample) {
  host_.set_live({"w0", "w1"});
  Start();
  EXPECT_EQ(served_->edge_epoch, 77);
  EXPECT_EQ(served_->edge_round, 0);
  // Round 0: Σ n_i·d_i = (0.2, 0.4, 0.6)·1 + (0.4, 0.2, 0.3)·3 over 4 samples.
  ASSERT_EQ(Push("w0", 0, {0.2f, 0.4f, 0.6f}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Push("w1", 0, {0.4f, 0.2f, 0.3f}, 3).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& edge = host_.outputs()[0];
  EXPECT_EQ(edge.kind, RoundOutput::Kind::kEdgeRound);  // answered here
  EXPECT_THAT(RefWorkers(edge), ElementsAre("w0", "w1"));
  ASSERT_NE(edge.weights, nullptr);
  EXPECT_EQ(edge.weights->edge_round, 1);
  EXPECT_EQ(edge.weights->edge_epoch, 77);
  // Parameters move by the mean delta, the buffer takes the mean value.
  EXPECT_THAT(
      edge.weights->weights,
      ElementsAre(FloatNear(1 - 0.35f, 1e-6), FloatNear(2 - 0.25f, 1e-6), FloatNear(0.375f, 1e-6)));
  // A delta of round 0 now, or of a round not open yet, is refused.
  EXPECT_EQ(Push("w0", 0, {0, 0, 0}, 1).refusal->reason, DropReason::kStaleVersion);
  EXPECT_EQ(Push("w0", 2, {0, 0, 0}, 1).refusal->reason, DropReason::kFutureVersion);
  // Round 1, the version's last: one aggregate for HQ.
  ASSERT_EQ(Push("w0", 1, {0.1f, 0.1f, 0.5f}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Push("w1", 1, {0.1f, 0.3f, 0.1f}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 2u);
  const RoundOutput& last = host_.outputs()[1];
  EXPECT_EQ(last.kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(last.version, 5);
  EXPECT_EQ(last.total_samples, 6);
  EXPECT_EQ(last.contributors, 2);
  EXPECT_EQ(last.edge_pushes, 2);
  EXPECT_THAT(RefWorkers(last), ElementsAre("w0", "w1"));
  // Copy after round 1: (0.65 - 0.1, 1.75 - 0.2, 0.3); HQ gets
  // (start - copy)·6 for the parameters and copy·6 for the buffer.
  EXPECT_THAT(last.sum, ElementsAre(FloatNear((1 - 0.55f) * 6, 1e-5),
                                    FloatNear((2 - 1.55f) * 6, 1e-5), FloatNear(0.3f * 6, 1e-5)));
}

TEST_F(EdgeRoundPolicyTest, ARetryIsRefusedAndNoLongerWaitedFor) {
  host_.set_live({"w0", "w1"});
  Start();
  ASSERT_EQ(Push("w0", 0, {0, 0, 0}, 1).kind, Verdict::Kind::kTaken);
  Verdict retry = Push("w1", 0, {1, 1, 1}, 1, /*retry=*/true);
  EXPECT_EQ(retry.refusal->reason, DropReason::kEdgeRetry);
  ASSERT_EQ(host_.outputs().size(), 1u);  // w1 is covered: round 0 closed with w0
  EXPECT_THAT(RefWorkers(host_.outputs()[0]), ElementsAre("w0"));
}

TEST_F(EdgeRoundPolicyTest, AVersionsRoundsWaitOnlyForTheWorkersOfItsStart) {
  host_.set_live({"w0"});
  Start(/*edge_rounds=*/3);
  host_.set_live({"w0", "w9"});  // joined mid-version: it waits for the next
  ASSERT_EQ(Push("w0", 0, {0, 0, 0}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  // w0 dies: the remaining rounds close at once, down to an empty aggregate.
  host_.set_live({"w9"});
  policy_->MembersChanged();
  ASSERT_EQ(host_.outputs().size(), 3u);
  EXPECT_EQ(host_.outputs()[1].kind, RoundOutput::Kind::kEdgeRound);
  EXPECT_EQ(host_.outputs()[2].kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(host_.outputs()[2].contributors, 0);
  EXPECT_THAT(host_.outputs()[2].sum, IsEmpty());
}

TEST_F(EdgeRoundPolicyTest, AfterTrainingItIsPlainFedavg) {
  host_.set_live({"w0"});
  Start();
  VersionState done;
  done.version = 6;
  done.training_done = true;
  auto hq = std::make_shared<WeightsSnapshot>(*served_);
  hq->edge_epoch = 0;
  std::vector<ContributorRef> superseded;
  std::shared_ptr<const WeightsSnapshot> served = policy_->Begin(done, hq, &superseded);
  EXPECT_EQ(served, hq);  // HQ's final weights, as they are
}

}  // namespace
}  // namespace hips
