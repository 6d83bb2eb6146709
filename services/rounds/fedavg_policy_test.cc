#include "services/rounds/fedavg_policy.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/numeric/fedavg.h"
#include "services/rounds/round_policies.h"
#include "services/rounds/testing/fake_round_host.h"
#include "services/time/clock.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class FedAvgPolicyTest : public ::testing::Test {
 protected:
  std::shared_ptr<const WeightsSnapshot> Start(RoundPolicyOptions::Tier tier, double participation,
                                               int64_t version = 5) {
    RoundPolicyOptions o;
    o.tier = tier;
    o.mode.mode = Mode::kFedAvg;
    o.mode.local_steps = 10;
    o.mode.participation = participation;
    o.num_floats = 2;
    o.id = "agg-0";
    o.hq.base = SgdSettings{0.9, true, 1e-4};
    o.hq.server_lr = 0.7;
    o.hq.server_momentum = 0.5;
    policy_ = std::make_unique<FedAvgPolicy>(o, &host_);
    return Begin(version);
  }
  std::shared_ptr<const WeightsSnapshot> Begin(int64_t version) {
    VersionState v;
    v.version = version;
    auto weights = std::make_shared<WeightsSnapshot>();
    weights->version = version;
    weights->weights = {0, 0};
    std::vector<ContributorRef> superseded;
    return policy_->Begin(v, weights, &superseded);
  }
  Verdict Push(const Contribution& c) {
    return policy_->Admit(c, clock_.Now(), taker_.For(c.sender));
  }

  SimulatedClock clock_;
  FakeRoundHost host_;
  Taker taker_;
  Contributions c_;
  std::unique_ptr<FedAvgPolicy> policy_;
};

TEST_F(FedAvgPolicyTest, AnAggregatorDrawsItsRoundsWorkersAndWaitsOnlyForThoseAlive) {
  host_.set_live({"w0", "w1", "w2", "w3"});
  std::shared_ptr<const WeightsSnapshot> served = Start(RoundPolicyOptions::Tier::kAggregator, 0.5);
  const std::vector<std::string> drawn =
      DrawParticipants({"w0", "w1", "w2", "w3"}, 0.5, /*version=*/5, "agg-0");
  ASSERT_EQ(drawn.size(), 2u);
  EXPECT_EQ(policy_->participants(), drawn);
  EXPECT_EQ(served->participants, drawn);  // told to the workers with the weights
  std::string other;
  for (const char* id : {"w0", "w1", "w2", "w3"}) {
    if (id != drawn[0] && id != drawn[1]) other = id;
  }
  Verdict not_drawn = Push(c_.Gradient(other, 5, {1, 1}));
  EXPECT_EQ(not_drawn.refusal->reason, DropReason::kNotDrawn);
  // The round waits only for the workers drawn.
  EXPECT_EQ(policy_->WaitingFor(), drawn);
  ASSERT_EQ(Push(c_.Gradient(drawn[0], 5, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs(), IsEmpty());
  EXPECT_THAT(policy_->WaitingFor(), ElementsAre(drawn[1]));
  // The other drawn worker dies: the round closes with the one that is in.
  std::set<std::string> live = {"w0", "w1", "w2", "w3"};
  live.erase(drawn[1]);
  host_.set_live(live);
  policy_->MembersChanged();
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_THAT(RefWorkers(host_.outputs()[0]), ElementsAre(drawn[0]));
  EXPECT_THAT(policy_->WaitingFor(), IsEmpty());  // closed
}

// While the tier forms, the draw waits for it (the tier holds the weights
// back: with thousands of homes, everyone at once would flood it); then F
// of the members are drawn. With F = 1 everyone takes part.
TEST_F(FedAvgPolicyTest, TheDrawWaitsForTheTierToFormAndFullParticipationTakesEveryone) {
  host_.set_live({"w0", "w1"});
  host_.set_forming(true);
  std::shared_ptr<const WeightsSnapshot> served = Start(RoundPolicyOptions::Tier::kAggregator, 0.5);
  EXPECT_TRUE(policy_->AwaitsForming());
  EXPECT_THAT(policy_->participants(), IsEmpty());
  EXPECT_THAT(served->participants, IsEmpty());
  host_.set_live({"w0", "w1", "w2", "w3"});
  host_.set_forming(false);
  served = policy_->Formed(VersionState{5, policy_->mode(), 0, false}, served);
  EXPECT_FALSE(policy_->AwaitsForming());
  EXPECT_EQ(served->participants.size(), 2u);
  EXPECT_EQ(served->participants, policy_->participants());
  EXPECT_EQ(served->version, 5);
  // HQ never holds its weights back.
  host_.set_forming(true);
  Start(RoundPolicyOptions::Tier::kHq, 0.5);
  EXPECT_FALSE(policy_->AwaitsForming());
  host_.set_forming(false);
  host_.set_live({"w0", "w1"});
  Start(RoundPolicyOptions::Tier::kAggregator, 1.0);
  EXPECT_THAT(policy_->participants(), IsEmpty());
  ASSERT_EQ(Push(c_.Gradient("w0", 5, {1, 1})).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Push(c_.Gradient("w1", 5, {1, 1})).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(host_.outputs().size(), 1u);
}

TEST_F(FedAvgPolicyTest, HqMovesOnFromARoundInWhichNobodyTookPart) {
  host_.set_live({"agg-0", "agg-1"});
  Start(RoundPolicyOptions::Tier::kHq, 0.5, 9);
  EXPECT_THAT(policy_->participants(), IsEmpty());  // HQ draws nobody
  policy_->MarkDone("agg-0", 9, clock_.Now());      // every drawn worker gone
  policy_->MarkDone("agg-1", 9, clock_.Now());
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_EQ(host_.outputs()[0].kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(host_.outputs()[0].contributors, 0);
  EXPECT_EQ(host_.outputs()[0].total_samples, 0);  // no step: the weights stay
}

TEST_F(FedAvgPolicyTest, HqStepsWithServerMomentumAndSendsTheWorkersTheirLocalSgd) {
  Start(RoundPolicyOptions::Tier::kHq, 1.0);
  EXPECT_EQ(policy_->StepSettings(SgdSettings{0.9, true, 1e-4}), (SgdSettings{0.5, false, 0.0}));
  RoundOutput out;
  EXPECT_DOUBLE_EQ(policy_->StepRate(out, 0.05, SgdSettings{0.5, false, 0.0}), 0.7);
  EXPECT_EQ(policy_->WorkersSgd(0.025), (LocalSgd{0.025, 0.9, true, 1e-4}));
  EXPECT_TRUE(policy_->StepsOnDeltas());
  EXPECT_EQ(MakeRoundPolicy(policy_->options(), &host_)->StepsOnDeltas(), true);
}

std::vector<std::string> Workers(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(absl::StrCat("worker-", i));
  return out;
}

TEST(DrawParticipantsTest, DrawsRoundFOfTheLiveWorkersReproducibly) {
  const std::vector<std::string> live = Workers(10);
  const std::vector<std::string> drawn = DrawParticipants(live, 0.3, 7, "agg-0");
  ASSERT_EQ(drawn.size(), 3u);
  EXPECT_TRUE(std::is_sorted(drawn.begin(), drawn.end()));
  EXPECT_EQ(std::set<std::string>(drawn.begin(), drawn.end()).size(), 3u);
  for (const std::string& id : drawn)
    EXPECT_NE(std::find(live.begin(), live.end(), id), live.end());
  // The same round draws the same, in whatever order the live list comes.
  std::vector<std::string> reversed(live.rbegin(), live.rend());
  EXPECT_EQ(DrawParticipants(reversed, 0.3, 7, "agg-0"), drawn);

  // Over many rounds every worker takes part about F of the time, and the
  // draws differ between rounds and between aggregators.
  std::map<std::string, int> times;
  std::set<std::vector<std::string>> distinct;
  int same_as_other_aggregator = 0;
  const int kRounds = 1000;
  for (int v = 0; v < kRounds; ++v) {
    const std::vector<std::string> d = DrawParticipants(live, 0.3, v, "agg-0");
    ASSERT_EQ(d.size(), 3u);
    for (const std::string& id : d) ++times[id];
    distinct.insert(d);
    same_as_other_aggregator += d == DrawParticipants(live, 0.3, v, "agg-1");
  }
  for (const std::string& id : live) {
    EXPECT_GT(times[id], 200) << id;  // 300 expected
    EXPECT_LT(times[id], 400) << id;
  }
  EXPECT_GT(distinct.size(), 100u);         // of 120 possible draws
  EXPECT_LT(same_as_other_aggregator, 50);  // 1000 / 120 expected
}

TEST(DrawParticipantsTest, EdgeCases) {
  EXPECT_EQ(DrawParticipants(Workers(4), 1.0, 3, "a"), Workers(4));
  EXPECT_EQ(DrawParticipants({}, 0.5, 3, "a"), std::vector<std::string>{});
  EXPECT_EQ(DrawParticipants({"w"}, 0.1, 3, "a"), std::vector<std::string>{"w"});
  EXPECT_EQ(DrawParticipants(Workers(10), 0.01, 3, "a").size(), 1u);  // at least one
  EXPECT_EQ(DrawParticipants(Workers(2), 0.5, 3, "a").size(), 1u);
  EXPECT_EQ(DrawParticipants(Workers(3), 0.5, 3, "a").size(), 2u);  // round(1.5)
}

TEST(ModeFitsOptimizerTest, FedavgNeedsSgd) {
  ModeConfig fedavg;
  fedavg.mode = Mode::kFedAvg;
  EXPECT_TRUE(CheckModeFitsOptimizer(fedavg, "sgd").ok());
  EXPECT_EQ(CheckModeFitsOptimizer(fedavg, "adam").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckModeFitsOptimizer(ModeConfig(), "adam").ok());
}

}  // namespace
}  // namespace hips
