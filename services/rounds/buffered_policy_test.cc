#include "services/rounds/buffered_policy.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/rounds/round_policies.h"
#include "services/rounds/sync_policy.h"
#include "services/rounds/testing/fake_round_host.h"
#include "services/time/clock.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::Pointwise;

// HQ with a buffer of K over MDCs agg-0..agg-3; each test plays HQ: a
// closed buffer becomes the next version (on_emit).
class BufferedPolicyTest : public ::testing::Test {
 protected:
  void Start(int64_t k, Mode mode = Mode::kSync,
             StalenessWeighting w = StalenessWeighting::kConstant, double exponent = 0.5) {
    options_.tier = RoundPolicyOptions::Tier::kHq;
    options_.mode.mode = mode;
    options_.mode.hq_buffer = k;
    options_.mode.staleness_weighting = w;
    options_.mode.staleness_exponent = exponent;
    options_.num_floats = 2;
    options_.hq.server_lr = 0.7;
    ASSERT_TRUE(ValidateModeConfig(options_.mode).ok());
    host_.set_live({"agg-0", "agg-1", "agg-2", "agg-3"});
    policy_ = MakeRoundPolicy(options_, &host_);
    ASSERT_NE(dynamic_cast<BufferedPolicy*>(policy_.get()), nullptr);
    host_.set_on_emit([this](const RoundOutput&) { Begin(version_ + 1); });
    Begin(0);
  }
  void Begin(int64_t version) {
    version_ = version;
    VersionState v;
    v.version = version;
    v.mode = options_.mode;
    std::vector<ContributorRef> superseded;
    policy_->Begin(v, nullptr, &superseded);
    EXPECT_THAT(superseded, IsEmpty());
    host_.set_newest(version);
  }
  // An MDC's aggregate: Σ n_i·g_i over `samples`, computed on `version`.
  Verdict Aggregate(const std::string& agg, int64_t version, std::vector<float> sum,
                    int64_t samples) {
    Contribution c = c_.Gradient(agg, version, std::move(sum), samples);
    c.scale = 1;
    c.contributors = 2;
    return policy_->Admit(c, clock_.Now(), taker_.For(agg, version));
  }

  RoundPolicyOptions options_;
  SimulatedClock clock_;
  FakeRoundHost host_;
  Taker taker_;
  Contributions c_;
  std::unique_ptr<RoundPolicy> policy_;
  int64_t version_ = 0;
};

TEST_F(BufferedPolicyTest, AppliesOnceKAggregatesAreInWithoutWaitingForTheOthers) {
  Start(/*k=*/2);
  ASSERT_EQ(Aggregate("agg-0", 0, {4, 8}, 4).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs(), IsEmpty());
  EXPECT_THAT(policy_->WaitingFor(), ElementsAre("agg-1", "agg-2", "agg-3"));
  ASSERT_EQ(Aggregate("agg-2", 0, {2, 0}, 2).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& o = host_.outputs()[0];
  EXPECT_EQ(o.kind, RoundOutput::Kind::kRound);
  EXPECT_EQ(o.version, 0);
  EXPECT_THAT(o.sum, ElementsAre(6, 8));
  EXPECT_EQ(o.total_samples, 6);
  EXPECT_EQ(o.contributors, 4);
  EXPECT_THAT(o.staleness, ElementsAre(Pair(0, 4)));
  EXPECT_THAT(RefWorkers(o), ElementsAre("agg-0", "agg-2"));
  // The step is sync's (the optimizer's settings and rate), scaled by the
  // buffer's share of a round: 2 of the 4 live MDCs.
  EXPECT_DOUBLE_EQ(o.round_share, 0.5);
  EXPECT_DOUBLE_EQ(policy_->StepRate(o, 0.1, SgdSettings{}), 0.05);
  EXPECT_FALSE(policy_->StepsOnDeltas());
  EXPECT_EQ(version_, 1);
}

// Two MDCs in one buffer, one of them 3 versions behind: by hand,
// polynomial with a = 0.5 weighs it (1 + 3)^-0.5 = 1/2, and the mean is
// (1·S_fresh + 1/2·S_stale) / (n_fresh + n_stale).
TEST_F(BufferedPolicyTest, AStaleAggregateIsWeightedDownByItsStaleness) {
  Start(/*k=*/2, Mode::kSync, StalenessWeighting::kPolynomial, 0.5);
  for (int v = 1; v <= 3; ++v) Begin(v);
  ASSERT_EQ(Aggregate("agg-1", 3, {2, 2}, 2).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Aggregate("agg-3", 0, {8, -4}, 4).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  const RoundOutput& o = host_.outputs()[0];
  EXPECT_THAT(o.sum, Pointwise(FloatNear(1e-6), std::vector<float>{2 + 4, 2 - 2}));
  EXPECT_EQ(o.total_samples, 6);
  EXPECT_EQ(o.version, 0);  // the oldest
  EXPECT_THAT(o.versions, ElementsAre(Pair(0, 2), Pair(3, 2)));
  EXPECT_THAT(o.staleness, ElementsAre(Pair(0, 2), Pair(3, 2)));
  std::vector<float> mean(2);
  RoundMeanInto(o, absl::MakeSpan(mean));
  EXPECT_THAT(mean, Pointwise(FloatNear(1e-6), std::vector<float>{1.0f, 0.0f}));

  // Constant weighting: the same aggregates count fully.
  Start(/*k=*/2);
  for (int v = 1; v <= 3; ++v) Begin(v);
  ASSERT_EQ(Aggregate("agg-1", 3, {2, 2}, 2).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Aggregate("agg-3", 0, {8, -4}, 4).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs().back().sum, ElementsAre(10, -2));
}

// K = number of MDCs, all fresh, constant weights: exactly the sync round.
TEST_F(BufferedPolicyTest, WithEveryMdcFreshItIsTheSyncRound) {
  Start(/*k=*/4);
  FakeRoundHost sync_host;
  sync_host.set_live({"agg-0", "agg-1", "agg-2", "agg-3"});
  RoundPolicyOptions sync_options = options_;
  sync_options.mode.hq_buffer = 0;
  SyncPolicy sync(sync_options, &sync_host);
  VersionState v;
  std::vector<ContributorRef> superseded;
  sync.Begin(v, nullptr, &superseded);
  Taker sync_taker;
  const std::vector<std::vector<float>> sums = {{1, 2}, {3, -1}, {0.5f, 0.25f}, {-2, 7}};
  for (int i = 0; i < 4; ++i) {
    const std::string id = "agg-" + std::to_string(i);
    ASSERT_EQ(Aggregate(id, 0, sums[i], i + 1).kind, Verdict::Kind::kTaken);
    Contribution c = c_.Gradient(id, 0, sums[i], i + 1);
    c.scale = 1;
    c.contributors = 2;
    ASSERT_EQ(sync.Admit(c, clock_.Now(), sync_taker.For(id)).kind, Verdict::Kind::kTaken);
  }
  ASSERT_EQ(host_.outputs().size(), 1u);
  ASSERT_EQ(sync_host.outputs().size(), 1u);
  EXPECT_EQ(host_.outputs()[0].sum, sync_host.outputs()[0].sum);
  EXPECT_EQ(host_.outputs()[0].total_samples, sync_host.outputs()[0].total_samples);
  EXPECT_DOUBLE_EQ(policy_->StepRate(host_.outputs()[0], 0.1, SgdSettings{}),
                   sync.StepRate(sync_host.outputs()[0], 0.1, SgdSettings{}));
}

// No MDC can send twice on one version: once every live one HQ waits for
// has had its turn (an empty or refused aggregate is a turn), the buffer
// closes short of K, and a buffer of nothing moves the version on.
TEST_F(BufferedPolicyTest, ClosesShortOfKOnceEveryLiveMdcHasSent) {
  Start(/*k=*/3);
  host_.set_live({"agg-0", "agg-1"});
  ASSERT_EQ(Aggregate("agg-0", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  EXPECT_THAT(host_.outputs(), IsEmpty());
  policy_->MarkDone("agg-1", 0, clock_.Now());  // its round had nothing
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(1, 1));
  EXPECT_DOUBLE_EQ(host_.outputs()[0].round_share, 1.0);  // everyone's turn: a whole round

  policy_->Refused("agg-0", 1, DropReason::kInvalid, clock_.Now());
  policy_->MarkDone("agg-1", 1, clock_.Now());
  ASSERT_EQ(host_.outputs().size(), 2u);
  EXPECT_EQ(host_.outputs()[1].contributors, 0);
  EXPECT_EQ(host_.outputs()[1].total_samples, 0);
  EXPECT_EQ(version_, 2);

  // An MDC that leaves is not waited for.
  ASSERT_EQ(Aggregate("agg-0", 2, {1, 0}, 1).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(host_.outputs().size(), 2u);
  host_.set_live({"agg-0"});
  policy_->MembersChanged();
  EXPECT_EQ(host_.outputs().size(), 3u);
  // Nor is one without workers (HQ's WaitsFor).
  host_.set_live({"agg-0", "agg-1"});
  host_.set_waits_for([](const std::string& id) { return id != "agg-1"; });
  ASSERT_EQ(Aggregate("agg-0", 3, {1, 0}, 1).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(host_.outputs().size(), 4u);
}

TEST_F(BufferedPolicyTest, WhileTheTierFormsOnlyKClosesABuffer) {
  Start(/*k=*/2);
  host_.set_live({"agg-0"});
  host_.set_forming(true);
  ASSERT_EQ(Aggregate("agg-0", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  policy_->Poll(clock_.Now());
  EXPECT_THAT(host_.outputs(), IsEmpty());
  host_.set_forming(false);
  policy_->MembersChanged();
  EXPECT_EQ(host_.outputs().size(), 1u);
}

TEST_F(BufferedPolicyTest, FedAvgStepsOnDeltasWithTheServerRate) {
  ModeConfig m{Mode::kFedAvg, 0, 5, 1.0};
  options_.mode = m;
  Start(/*k=*/1, Mode::kFedAvg);
  ASSERT_EQ(Aggregate("agg-0", 0, {3, 3}, 3).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_TRUE(policy_->StepsOnDeltas());
  // FedAvgM's server rate, for 1 of the 4 live MDCs.
  EXPECT_DOUBLE_EQ(policy_->StepRate(host_.outputs()[0], 0.1, SgdSettings{}), 0.7 / 4);
}

// --round_deadline_ms at HQ: with K = 4 of 4 MDCs and agg-3 live but never
// sending, a buffer closes 500 ms after its first aggregate once it holds
// the quorum (2), as a share of a round; without a quorum it waits on.
TEST_F(BufferedPolicyTest, ClosesAtHqsDeadlineWithAQuorum) {
  options_.round_deadline = absl::Milliseconds(500);
  options_.quorum = 2;
  Start(/*k=*/4);
  ASSERT_EQ(Aggregate("agg-0", 0, {4, 4}, 4).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(policy_->CloseAt(), absl::InfiniteFuture());  // 1 < quorum
  clock_.AdvanceBy(absl::Seconds(5));
  policy_->Poll(clock_.Now());
  EXPECT_THAT(host_.outputs(), IsEmpty());
  ASSERT_EQ(Aggregate("agg-1", 0, {2, 0}, 2).kind, Verdict::Kind::kTaken);
  // Past the deadline (from agg-0's aggregate) with a quorum: the next
  // poll closes it.
  EXPECT_EQ(policy_->CloseAt(), clock_.Now() - absl::Seconds(5) + absl::Milliseconds(500));
  policy_->Poll(clock_.Now());
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(6, 4));
  EXPECT_DOUBLE_EQ(host_.outputs()[0].round_share, 0.5);  // 2 of 4
  EXPECT_EQ(version_, 1);

  // The next buffer's deadline counts from its own first aggregate, and an
  // aggregate that comes after it first closes the buffer it missed.
  EXPECT_EQ(policy_->CloseAt(), absl::InfiniteFuture());
  ASSERT_EQ(Aggregate("agg-0", 1, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  clock_.AdvanceBy(absl::Milliseconds(400));
  ASSERT_EQ(Aggregate("agg-1", 1, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  policy_->Poll(clock_.Now());
  EXPECT_EQ(host_.outputs().size(), 1u);  // 400 ms < 500 ms
  clock_.AdvanceBy(absl::Milliseconds(100));
  ASSERT_EQ(Aggregate("agg-2", 1, {5, 5}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 2u);
  EXPECT_THAT(host_.outputs()[1].sum, ElementsAre(2, 2));  // without agg-2's
  EXPECT_EQ(version_, 2);
  EXPECT_EQ(dynamic_cast<BufferedPolicy&>(*policy_).buffered(), 1);  // agg-2's, next
}

TEST_F(BufferedPolicyTest, RefusesFutureVersionsAndBadValuesAndReleasesWhatItHolds) {
  Start(/*k=*/3);
  EXPECT_EQ(Aggregate("agg-0", 1, {1, 1}, 1).refusal->reason, DropReason::kFutureVersion);
  EXPECT_EQ(Aggregate("agg-0", 0, {1, NAN}, 1).kind, Verdict::Kind::kRefused);
  ASSERT_EQ(Aggregate("agg-1", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Aggregate("agg-2", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  EXPECT_EQ(policy_->Release().size(), 2u);
  // Released: a fresh buffer.
  ASSERT_EQ(Aggregate("agg-3", 0, {5, 5}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Aggregate("agg-1", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(Aggregate("agg-2", 0, {1, 1}, 1).kind, Verdict::Kind::kTaken);
  ASSERT_EQ(host_.outputs().size(), 1u);
  EXPECT_THAT(host_.outputs()[0].sum, ElementsAre(7, 7));
}

}  // namespace
}  // namespace hips
