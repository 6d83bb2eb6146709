#include "hq/parameter_server.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hq/control_variates.h"
#include "hq/testing/fake_sgd.h"
#include "services/numeric/scaffold.h"
#include "services/testing/resident_memory.h"
#include "services/testing/wait_for.h"
#include "services/time/clock.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::HasSubstr;

AggregatePush Aggregate(const std::string& id, int64_t version, std::vector<float> sum,
                        int64_t samples, int64_t contributors) {
  AggregatePush a;
  a.aggregator = id;
  a.version = version;
  a.total_samples = samples;
  a.contributors = contributors;
  a.loss_sum = 0.5 * samples;
  a.sum = std::move(sum);
  return a;
}

// An aggregate that lists its workers' gradients: (worker, sequence) pairs,
// one sample each.
AggregatePush Listed(const std::string& id, int64_t version, int64_t sequence,
                     std::vector<std::pair<std::string, int64_t>> workers) {
  const int64_t n = static_cast<int64_t>(workers.size());
  AggregatePush a = Aggregate(id, version, {static_cast<float>(n), 0}, n, n);
  a.sequence = sequence;
  for (const auto& [worker, seq] : workers) {
    a.contributor_list.push_back({worker, seq, version, /*step=*/version});
  }
  return a;
}

HeartbeatRequestData Beat(const std::string& aggregator, std::vector<std::string> workers) {
  HeartbeatRequestData hb;
  hb.member = aggregator;
  hb.incarnation = 1;
  hb.live_workers = std::move(workers);
  return hb;
}

class ParameterServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<ParameterServer> Make(int aggregators, int64_t max_versions,
                                        std::string schedule = "constant") {
    ParameterServerOptions o;
    o.expected_aggregators = aggregators;
    o.max_versions = max_versions;
    o.optimizer.learning_rate = 0.5;
    o.optimizer.lr_schedule = schedule;
    return MakeWith(o);
  }
  std::unique_ptr<ParameterServer> MakeWith(ParameterServerOptions o) {
    // Room for the aggregator ids the tests make up.
    if (o.max_aggregators == 0) o.max_aggregators = std::max(o.expected_aggregators, 8);
    EXPECT_TRUE(ValidateParameterServerOptions(o).ok());
    o.clock = &clock_;
    return std::make_unique<ParameterServer>(
        o, *ModelLayout::Create({{"w", {2}}}),
        std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_),
        [this](std::shared_ptr<const WeightsSnapshot> s) { published_.push_back(s->version); });
  }
  // Time is the test's (leases, deadlines, update times).
  SimulatedClock clock_;
  std::vector<double> lrs_;
  std::vector<int64_t> published_;
};

TEST_F(ParameterServerTest, AppliesTheMeanGradientOfARoundOnceEveryAggregatorContributed) {
  auto ps = Make(2, 0);
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 0);  // one of two aggregators so far
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 2)).ok());
  // Mean gradient ([2,4] + [6,0]) / 4 = [2, 1]; w = [1,1] - 0.5·[2,1].
  std::shared_ptr<const WeightsSnapshot> w = ps->LatestWeights();
  EXPECT_EQ(w->version, 1);
  EXPECT_THAT(w->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.samples_applied, 4);
  EXPECT_EQ(s.gradients_applied, 3);
  EXPECT_DOUBLE_EQ(s.last_loss, 0.5);
  EXPECT_EQ(published_, (std::vector<int64_t>{0, 1}));
}

// HQ's --clip_norm bounds an aggregate's norm per sample (its sum over its
// samples) before it is applied, its weight unchanged, and counts it.
TEST_F(ParameterServerTest, AnAggregateAboveTheClipNormIsScaledDownToItAndCounted) {
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.optimizer.learning_rate = 0.5;
  o.clip_norm = *ParseClipNorm("1");
  auto ps = MakeWith(o);
  // a0: [6, 8] over 2 samples, norm 5 per sample: x 1/5 -> [1.2, 1.6].
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {6, 8}, 2, 1)).ok());
  // a1: [0.5, 0] over 2 samples, norm 0.25: as it is.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {0.5f, 0}, 2, 1)).ok());
  // Mean ([1.2, 1.6] + [0.5, 0]) / 4 = [0.425, 0.4]; w = [1, 1] - 0.5 x that.
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.7875f), FloatEq(0.8f)));
  EXPECT_EQ(ps->status().aggregates_clipped, 1);
  EXPECT_EQ(ps->status().samples_applied, 4);
}

TEST_F(ParameterServerTest, DuplicatesAndOtherVersionsAreCountedNeverApplied) {
  auto ps = Make(2, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  absl::StatusOr<PushResult> dup = ps->AcceptAggregate(Aggregate("a0", 0, {100, 100}, 2, 1));
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_TRUE(
      absl::IsFailedPrecondition(ps->AcceptAggregate(Aggregate("a1", 1, {1, 1}, 1, 1)).status()));
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1)).ok());
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  // A retry of round 0 after it was applied (its ack was lost) is a
  // duplicate; a first push for round 0 from anyone else is stale.
  absl::StatusOr<PushResult> retry = ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_TRUE(
      absl::IsFailedPrecondition(ps->AcceptAggregate(Aggregate("a2", 0, {6, 0}, 2, 1)).status()));
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.aggregates_received, 6);
  EXPECT_EQ(s.aggregates_applied, 2);
  EXPECT_EQ(s.aggregates_duplicate, 2);
  EXPECT_EQ(s.aggregates_dropped.at("future_version"), 1);
  EXPECT_EQ(s.aggregates_dropped.at("stale_version"), 1);
  EXPECT_EQ(lrs_.size(), 1u);
}

TEST_F(ParameterServerTest, StopsAtTheBudgetWithCosineDecay) {
  auto ps = Make(1, 2, "cosine");
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());
  EXPECT_FALSE(ps->LatestWeights()->training_done);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {1, 1}, 1, 1)).ok());
  EXPECT_TRUE(ps->LatestWeights()->training_done);
  EXPECT_TRUE(ps->status().training_done);
  // lr(v) = 0.5 · ½(1 + cos(π v / 2)): 0.5 at v=0, 0.25 at v=1.
  EXPECT_THAT(lrs_, ElementsAre(0.5, ::testing::DoubleNear(0.25, 1e-12)));
  // Nothing is applied past the budget.
  EXPECT_FALSE(ps->AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->status().version, 2);
}

ParameterServerOptions AsyncOptions(Mode mode, int64_t staleness = 0) {
  ParameterServerOptions o;
  o.staleness_lr = StalenessScaling::kNone;
  o.expected_aggregators = 2;
  o.mode = {mode, staleness};
  o.optimizer.learning_rate = 0.5;
  o.optimizer.lr_schedule = "constant";
  return o;
}

// received = applied + duplicate + dropped + pending, at the gradient level.
void ExpectAccountingHolds(const ParameterServerStatus& s) {
  int64_t dropped = 0;
  for (const auto& [reason, n] : s.gradients_dropped) dropped += n;
  EXPECT_EQ(s.gradients_received,
            s.gradients_applied + s.gradients_duplicate + dropped + s.gradients_pending);
}

TEST_F(ParameterServerTest, AsyncAppliesEveryAggregateAndRecordsItsStaleness) {
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  // Both computed on version 0: the first is fresh, the second one stale.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  absl::StatusOr<PushResult> second = ps->AcceptAggregate(Aggregate("a1", 0, {4, 0}, 4, 2));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->newest_version, 2);
  // w = [1,1] - 0.5·[1,2] - 0.5·[1,0].
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.0f)));
  EXPECT_EQ(ps->LatestWeights()->mode, (ModeConfig{Mode::kAsync, 0}));
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.gradients_applied, 3);
  EXPECT_EQ(s.samples_applied, 6);
  EXPECT_THAT(std::vector<int64_t>(s.staleness.counts().begin(), s.staleness.counts().begin() + 3),
              ElementsAre(1, 2, 0));
  EXPECT_EQ(s.staleness.max(), 1);
  ExpectAccountingHolds(s);
}

TEST_F(ParameterServerTest, AStatusReadWhileAnUpdateIsPublishedAddsUp) {
  // The publish callback runs in the middle of an update (weights out,
  // counters not yet): a status read there must still account for every
  // gradient (it did not: the applied ones were nowhere for a moment).
  for (Mode mode : {Mode::kSync, Mode::kAsync}) {
    ParameterServerOptions o = AsyncOptions(mode);
    ParameterServer* server = nullptr;
    int checked = 0;
    ParameterServer ps(o, *ModelLayout::Create({{"w", {2}}}),
                       std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_),
                       [&](std::shared_ptr<const WeightsSnapshot>) {
                         if (server == nullptr) return;
                         ExpectAccountingHolds(server->status());
                         ++checked;
                       });
    server = &ps;
    for (int64_t v = 0; v < 3; ++v) {
      ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", v, {2, 4}, 2, 1)).ok());
      if (mode == Mode::kSync) {
        ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", v, {1, 1}, 1, 2)).ok());
      }
    }
    EXPECT_GE(checked, 3) << DescribeMode({mode, 0});
    ExpectAccountingHolds(ps.status());
    EXPECT_EQ(ps.status().gradients_pending, 0);
  }
}

// A graceful stop (issue 25): once intake stopped, the state captured for
// the last checkpoint holds every update HQ acknowledged, however many were
// arriving; what comes after is refused as UNAVAILABLE, to be sent again.
TEST_F(ParameterServerTest, AfterIntakeStopsTheLastCaptureHoldsEveryAcknowledgedUpdate) {
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  std::atomic<int64_t> newest_acked{0};
  std::atomic<bool> refused{false};
  std::thread pusher([&] {
    // Bounded: it ends at the first refusal, or after 100,000 pushes.
    for (int64_t seq = 1; seq <= 100000 && !refused.load(); ++seq) {
      AggregatePush a = Aggregate("a0", ps->LatestWeights()->version, {1, 1}, 1, 1);
      a.sequence = seq;
      absl::StatusOr<PushResult> r = ps->AcceptAggregate(a);
      if (r.ok()) {
        newest_acked.store(std::max(newest_acked.load(), r->newest_version));
      } else if (absl::IsUnavailable(r.status())) {
        refused.store(true);
      } else {
        ADD_FAILURE() << r.status();
        return;
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] { return newest_acked.load() >= 20; }, absl::Seconds(30)));
  ps->StopIntake();
  const absl::StatusOr<Checkpoint> last = ps->Capture();
  pusher.join();
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE(refused.load());
  EXPECT_GE(last->version, newest_acked.load());
  EXPECT_EQ(ps->status().version, last->version);  // nothing applied after the capture
}

TEST_F(ParameterServerTest, AsyncScalesTheLearningRateBySamplesAndStaleness) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.lr_reference_samples = 8;
  o.staleness_lr = StalenessScaling::kInverse;
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 2}, 2, 1)).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {4, 4}, 4, 1)).ok());
  // 0.5 · 2/8 at staleness 0; 0.5 · 4/8 / (1 + 1) at staleness 1.
  EXPECT_THAT(lrs_, ElementsAre(0.125, 0.125));
}

TEST_F(ParameterServerTest, AsyncUpdatesUseTheAsyncMomentumAndKeepTheLongRunStep) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.optimizer.momentum = 0.9;
  o.async_momentum = 0.5;
  auto sgd = std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_);
  FakeSgd* fake = sgd.get();
  ParameterServer ps(o, *ModelLayout::Create({{"w", {2}}}), std::move(sgd));
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 1, {1, 1}, 1, 1)).ok());
  // Back in sync the optimizer's own momentum and rate return.
  ASSERT_TRUE(ps.SetMode({Mode::kSync, 0}).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 3, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 3, {1, 1}, 1, 1)).ok());
  EXPECT_THAT(fake->momenta, ElementsAre(0.5, 0.9));
  // lr · (1 - 0.5) / (1 - 0.9) = 5 lr in async; lr in sync.
  EXPECT_THAT(lrs_,
              ElementsAre(::testing::DoubleNear(2.5, 1e-12), ::testing::DoubleNear(2.5, 1e-12),
                          ::testing::DoubleNear(2.5, 1e-12), 0.5));
}

// fedavg: each version's weights carry the local SGD (the scheduled rate of
// that version, the optimizer's momentum, Nesterov, weight decay); a round
// applies the sample-weighted mean delta at the server rate, with the
// server momentum and neither Nesterov nor weight decay.
TEST_F(ParameterServerTest, FedAvgAppliesTheMeanDeltaAtTheServerRateAndSendsTheLocalSgd) {
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.max_versions = 4;
  o.mode = {Mode::kFedAvg, 0, 5, 1.0};
  o.optimizer.learning_rate = 0.2;
  o.optimizer.lr_schedule = "cosine";
  o.optimizer.momentum = 0.9;
  o.optimizer.nesterov = true;
  o.optimizer.weight_decay = 1e-4;
  o.server_lr = 0.5;
  o.server_momentum = 0.7;
  ASSERT_TRUE(ValidateParameterServerOptions(o).ok());
  auto sgd = std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_);
  FakeSgd* fake = sgd.get();
  ParameterServer ps(o, *ModelLayout::Create({{"w", {2}}}), std::move(sgd));
  EXPECT_EQ(ps.LatestWeights()->local_sgd,
            (LocalSgd{ScheduledLearningRate(o.optimizer, 0, 4), 0.9, true, 1e-4}));
  // Deltas of 10 and 30 samples: mean = (10·[1,2] + 30·[3,−2]) / 40.
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 0, {10, 20}, 10, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 0, {90, -60}, 30, 2)).ok());
  std::shared_ptr<const WeightsSnapshot> w = ps.LatestWeights();
  EXPECT_EQ(w->version, 1);
  EXPECT_THAT(lrs_, ElementsAre(0.5));
  EXPECT_THAT(w->weights, ElementsAre(FloatEq(1 - 0.5f * 2.5f), FloatEq(1 - 0.5f * -1.0f)));
  ASSERT_FALSE(fake->sgd_settings.empty());
  EXPECT_EQ(fake->sgd_settings.back(), (SgdSettings{0.7, false, 0.0}));
  EXPECT_EQ(w->local_sgd.lr, ScheduledLearningRate(o.optimizer, 1, 4));
  EXPECT_LT(w->local_sgd.lr, 0.2);  // the schedule moved on
  const ParameterServerStatus s = ps.status();
  EXPECT_EQ(s.samples_applied, 40);
  EXPECT_EQ(s.gradients_applied, 3);
}

// A round in which every aggregator is done without a delta (all their
// drawn workers died) moves the version on, the weights unchanged.
TEST_F(ParameterServerTest, AnEmptyFedAvgRoundMovesTheVersionOnWithTheWeightsUnchanged) {
  ParameterServerOptions o = AsyncOptions(Mode::kFedAvg);
  o.mode = {Mode::kFedAvg, 0, 5, 0.5};
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {}, 0, 0)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {}, 0, 0)).ok());
  std::shared_ptr<const WeightsSnapshot> w = ps->LatestWeights();
  EXPECT_EQ(w->version, 1);
  EXPECT_THAT(w->weights, ElementsAre(1, 1));
  EXPECT_TRUE(lrs_.empty());  // no optimizer step
  EXPECT_EQ(ps->status().samples_applied, 0);
  // The next round trains as usual.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {2, 2}, 2, 1)).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 1, {}, 0, 0)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 2);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(0, 0));  // 1 − 1·[1, 1]
}

TEST_F(ParameterServerTest, FedAvgNeedsSgdAndSwitchingInOrOutResetsTheMomentum) {
  ParameterServerOptions o = AsyncOptions(Mode::kFedAvg);
  o.optimizer.name = "adam";
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateParameterServerOptions(o)));
  o.optimizer.name = "sgd";
  for (double bad : {0.0, -1.0, 1001.0, std::nan("")}) {
    o.server_lr = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateParameterServerOptions(o))) << bad;
  }
  o.server_lr = 1;
  for (double bad : {-0.1, 1.0, std::nan("")}) {
    o.server_momentum = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateParameterServerOptions(o))) << bad;
  }

  ParameterServerOptions adam = AsyncOptions(Mode::kSync);
  adam.optimizer.name = "adam";
  EXPECT_TRUE(
      absl::IsFailedPrecondition(MakeWith(adam)->SetMode({Mode::kFedAvg, 0, 5, 1.0}).status()));

  auto sgd = std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_);
  FakeSgd* fake = sgd.get();
  ParameterServer ps(AsyncOptions(Mode::kSync), *ModelLayout::Create({{"w", {2}}}), std::move(sgd));
  ASSERT_TRUE(ps.SetMode({Mode::kFedAvg, 0, 5, 1.0}).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 0, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps.LatestWeights()->mode, (ModeConfig{Mode::kFedAvg, 0, 5, 1.0}));
  EXPECT_EQ(fake->imports, 1);  // sync -> fedavg
  ASSERT_TRUE(ps.SetMode({Mode::kFedAvg, 0, 5, 0.5}).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 1, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 1, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(fake->imports, 1);  // fedavg -> fedavg keeps it
  ASSERT_TRUE(ps.SetMode({Mode::kAsync, 0}).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).ok());
  ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 2, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(fake->imports, 2);  // fedavg -> async
}

TEST_F(ParameterServerTest, SspNeverAppliesAGradientStalerThanTheBound) {
  auto ps = MakeWith(AsyncOptions(Mode::kSsp, 1));
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());  // τ=0
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {1, 1}, 1, 1)).ok());  // τ=1
  const absl::Status too_stale = ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(too_stale)) << too_stale;  // τ=2
  // A coalesced aggregate is judged by its oldest gradient.
  AggregatePush mixed = Aggregate("a1", 0, {1, 1}, 2, 2);
  mixed.contributor_versions = {{0, 1}, {2, 1}};
  EXPECT_TRUE(absl::IsFailedPrecondition(ps->AcceptAggregate(mixed).status()));
  mixed.version = 1;
  mixed.contributor_versions = {{1, 1}, {2, 1}};
  ASSERT_TRUE(ps->AcceptAggregate(mixed).ok());  // τ = 1 and 0
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.version, 3);
  EXPECT_EQ(s.staleness.max(), 1);
  EXPECT_EQ(s.gradients_dropped.at("staleness_exceeded"), 3);
  EXPECT_THAT(std::vector<int64_t>(s.staleness.counts().begin(), s.staleness.counts().begin() + 3),
              ElementsAre(2, 2, 0));
  ExpectAccountingHolds(s);
}

TEST_F(ParameterServerTest, ContributorVersionsMustAddUpAndLieInRange) {
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  AggregatePush bad = Aggregate("a0", 0, {1, 1}, 2, 2);
  bad.contributor_versions = {{0, 1}};  // one of two
  EXPECT_TRUE(absl::IsInvalidArgument(ps->AcceptAggregate(bad).status()));
  bad.contributor_versions = {{0, 1}, {5, 1}};  // a version HQ has not reached
  EXPECT_TRUE(absl::IsInvalidArgument(ps->AcceptAggregate(bad).status()));
  EXPECT_EQ(ps->status().gradients_dropped.at("invalid"), 4);
  EXPECT_TRUE(lrs_.empty());
}

TEST_F(ParameterServerTest, AModeSwitchTakesEffectAtTheNextVersion) {
  auto ps = Make(2, 0);
  absl::StatusOr<ModeSwitch> sw = ps->SetMode({Mode::kAsync, 0});
  ASSERT_TRUE(sw.ok()) << sw.status();
  EXPECT_EQ(sw->effective_version, 1);
  EXPECT_EQ(sw->previous, (ModeConfig{Mode::kSync, 0}));
  EXPECT_TRUE(ps->status().pending_mode.has_value());
  // Round 0 is still a sync round: it needs both aggregators.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {1, 1}, 1, 1)).ok());
  std::shared_ptr<const WeightsSnapshot> w = ps->LatestWeights();
  EXPECT_EQ(w->version, 1);
  EXPECT_EQ(w->mode.mode, Mode::kAsync);
  EXPECT_EQ(w->mode_since, 1);
  // A sync-era gradient is never applied under async.
  const absl::Status old = ps->AcceptAggregate(Aggregate("a2", 0, {1, 1}, 1, 1)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(old)) << old;
  EXPECT_EQ(ps->status().gradients_dropped.at("mode_changed"), 1);
  // Async now: one aggregate, one version.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 2);
  // And back to sync at version 3.
  ASSERT_TRUE(ps->SetMode({Mode::kSync, 0}).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 2, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->mode.mode, Mode::kSync);
  EXPECT_EQ(ps->LatestWeights()->mode_since, 3);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 3, {1, 1}, 1, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 3);  // waits for a1
  const ParameterServerStatus s = ps->status();
  EXPECT_FALSE(s.pending_mode.has_value());
  EXPECT_EQ(s.gradients_pending, 1);
  ExpectAccountingHolds(s);
  // Bad requests are refused.
  EXPECT_TRUE(absl::IsInvalidArgument(ps->SetMode({Mode::kSsp, -1}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ps->SetMode({Mode::kAsync, 3}).status()));
}

TEST_F(ParameterServerTest, ASyncRoundClosesAtItsDeadlineWithAQuorum) {
  ParameterServerOptions o;
  o.expected_aggregators = 3;
  o.quorum_aggregators = 2;
  o.round_deadline = absl::Hours(1);  // the test drives the clock
  o.optimizer.learning_rate = 0.5;
  o.optimizer.lr_schedule = "constant";
  auto ps = MakeWith(o);
  // Round 0: past its deadline without a quorum it stays open; the
  // aggregate that brings the quorum then closes it at once.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 2}, 2, 1)).ok());
  clock_.AdvanceBy(absl::Hours(2));
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {2, 2}, 2, 1)).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.5f), FloatEq(0.5f)));
  // Round 1: a quorum within the hour waits for the deadline, an hour after
  // the round's first aggregate.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {2, 2}, 2, 1)).ok());
  clock_.AdvanceBy(absl::Minutes(30));
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 1, {2, 2}, 2, 1)).ok());
  clock_.AdvanceBy(absl::Minutes(29));
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  clock_.AdvanceBy(absl::Minutes(1));
  EXPECT_EQ(ps->LatestWeights()->version, 2);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.0f)));
  // The third aggregate of round 1 is late: counted, never applied.
  const absl::Status late = ps->AcceptAggregate(Aggregate("a2", 1, {9, 9}, 2, 1)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.gradients_applied, 4);
  EXPECT_EQ(s.gradients_dropped.at("stale_version"), 1);
  EXPECT_EQ(lrs_.size(), 2u);
  ExpectAccountingHolds(s);
}

TEST_F(ParameterServerTest, ALateAggregateFirstAppliesTheRoundItMissed) {
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.quorum_aggregators = 1;
  o.round_deadline = absl::Hours(1);
  o.optimizer.learning_rate = 0.5;
  o.optimizer.lr_schedule = "constant";
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 2}, 2, 1)).ok());
  // The deadline passed but the timer has not run yet (a busy machine).
  clock_.Jump(absl::Hours(2));
  const absl::Status late = ps->AcceptAggregate(Aggregate("a1", 0, {9, 9}, 2, 1)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(late)) << late;
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.5f), FloatEq(0.5f)));
  ExpectAccountingHolds(ps->status());
}

TEST_F(ParameterServerTest, ASampleBudgetEndsTrainingAndDrivesTheSchedule) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.max_samples = 4;
  o.optimizer.lr_schedule = "cosine";
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {1, 1}, 2, 1)).ok());
  EXPECT_FALSE(ps->LatestWeights()->training_done);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 1, {1, 1}, 2, 1)).ok());
  EXPECT_TRUE(ps->LatestWeights()->training_done);
  // lr at 0 and 2 of 4 samples: 0.5 and 0.25.
  EXPECT_THAT(lrs_, ElementsAre(0.5, ::testing::DoubleNear(0.25, 1e-12)));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(ps->AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).status()));
  EXPECT_EQ(ps->status().gradients_dropped.at("training_done"), 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(ps->SetMode({Mode::kSync, 0}).status()));
}

TEST_F(ParameterServerTest, RepeatedSequenceNumbersAreDuplicatesInEveryMode) {
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  AggregatePush a = Aggregate("a0", 0, {1, 1}, 1, 1);
  a.sequence = 100;
  ASSERT_TRUE(ps->AcceptAggregate(a).ok());
  absl::StatusOr<PushResult> retry = ps->AcceptAggregate(a);
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  a.sequence = 101;
  ASSERT_TRUE(ps->AcceptAggregate(a).ok());
  EXPECT_TRUE(ps->AcceptAggregate(a)->duplicate);
  EXPECT_EQ(lrs_.size(), 2u);
  EXPECT_EQ(ps->status().gradients_duplicate, 2);
}

TEST_F(ParameterServerTest, AWorkerGradientIsAppliedOnceWhicheverAggregatorItCameThrough) {
  auto ps = Make(2, 0);
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 1, {{"w0", 10}, {"w2", 20}})).ok());
  // w2 failed over to a1 without an answer and pushed again: a retry sent on
  // alone, acknowledged and not applied.
  AggregatePush single = Listed("a1", 0, 1, {{"w2", 20}});
  single.single = true;
  absl::StatusOr<PushResult> r = ps->AcceptAggregate(single);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->duplicate);
  EXPECT_EQ(ps->LatestWeights()->version, 0);  // a single does not end a1's part
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a1", 0, 2, {{"w1", 30}, {"w3", 40}})).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  // An aggregate repeating a gradient that is already in is refused whole
  // (the other gradient in it is counted as dropped) and ends its sender's
  // part of the round.
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 1, 3, {{"w0", 11}, {"w2", 21}})).ok());
  r = ps->AcceptAggregate(Listed("a1", 1, 4, {{"w1", 31}, {"w2", 21}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(ps->LatestWeights()->version, 2);
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.gradients_applied, 6);
  EXPECT_EQ(s.gradients_duplicate, 1);
  EXPECT_EQ(s.gradients_dropped.at("repeated_contributor"), 2);
  EXPECT_EQ(s.max_round_contributors, 4);
  EXPECT_EQ(s.gradients_received,
            s.gradients_applied + s.gradients_duplicate + 2 + s.gradients_pending);
}

// Pushes are named (incarnation, sequence) without a clock: an aggregator
// and a worker restarted "in the past" (their new processes number from 1,
// far below their predecessors' numbers) are applied, what the dead
// processes send late is a repeat, and a checkpoint keeps both.
TEST_F(ParameterServerTest, MembersRestartedInThePastAreNotTakenForRepeats) {
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  const int64_t big = 1'700'000'000'000'000;  // (a wall-clock sequence of before)
  auto of = [](AggregatePush a, int64_t aggregator_inc, int64_t worker_inc) {
    a.incarnation = aggregator_inc;
    for (ContributorRef& c : a.contributor_list) c.incarnation = worker_inc;
    return a;
  };
  const AggregatePush dead = of(Listed("a0", 0, big, {{"w0", big}}), 100, 10);
  ASSERT_TRUE(ps->AcceptAggregate(dead).ok());
  absl::StatusOr<PushResult> r = ps->AcceptAggregate(of(Listed("a0", 1, 1, {{"w0", 1}}), 200, 20));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->duplicate);
  EXPECT_EQ(lrs_.size(), 2u);  // both applied
  r = ps->AcceptAggregate(dead);  // the dead aggregator's late retry
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->duplicate);
  // The dead worker's gradient, retried through another aggregator.
  AggregatePush single = of(Listed("a1", 0, 1, {{"w0", big}}), 300, 10);
  single.single = true;
  r = ps->AcceptAggregate(single);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->duplicate);
  EXPECT_EQ(lrs_.size(), 2u);

  absl::StatusOr<Checkpoint> c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->incarnations.at("aggregator:a0"), (std::vector<int64_t>{200, 100}));
  EXPECT_EQ(c->incarnations.at("worker:w0"), (std::vector<int64_t>{20, 10}));
  EXPECT_EQ(c->sequences.at("worker:w0"), 1);
  auto resumed = MakeWith(AsyncOptions(Mode::kAsync));
  ASSERT_TRUE(resumed->Restore(*c).ok());
  EXPECT_TRUE(resumed->AcceptAggregate(dead)->duplicate);
  EXPECT_TRUE(resumed->AcceptAggregate(of(Listed("a0", 1, 1, {{"w0", 1}}), 200, 20))->duplicate);
  r = resumed->AcceptAggregate(of(Listed("a0", 2, 2, {{"w0", 2}}), 200, 20));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->duplicate);
  // A checkpoint written before incarnations: its senders are incarnation 0.
  Checkpoint older = *c;
  older.incarnations.clear();
  auto from_older = MakeWith(AsyncOptions(Mode::kAsync));
  ASSERT_TRUE(from_older->Restore(older).ok());
  r = from_older->AcceptAggregate(of(Listed("a0", 2, 1, {{"w0", 1}}), 0, 0));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->duplicate);
  r = from_older->AcceptAggregate(of(Listed("a0", 2, 2, {{"w0", 2}}), 400, 40));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->duplicate);
}

TEST_F(ParameterServerTest, TheMeanGoesStraightIntoTheOptimizersBufferAndUpdatesAreTimed) {
  for (Mode mode : {Mode::kSync, Mode::kAsync}) {
    for (bool own : {false, true}) {
      auto sgd = std::make_unique<FakeSgd>(std::vector<float>{1, 1}, &lrs_);
      FakeSgd* fake = sgd.get();
      if (own) fake->own_gradient.assign(2, 0.0f);
      fake->step_time = absl::Milliseconds(20);
      fake->clock = &clock_;
      ParameterServerOptions o = AsyncOptions(mode);
      o.clock = &clock_;
      ParameterServer ps(o, *ModelLayout::Create({{"w", {2}}}), std::move(sgd), nullptr);
      ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
      if (mode == Mode::kSync) {
        ASSERT_TRUE(ps.AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1)).ok());
      }
      ASSERT_EQ(ps.LatestWeights()->version, 1);
      EXPECT_EQ(fake->steps_from_own_buffer, own ? 1 : 0);
      // w - 0.5 · mean: sync (8, 4) / 4, async (2, 4) / 2; the same whether
      // the mean went into the optimizer's buffer or HQ's own.
      EXPECT_EQ(ps.LatestWeights()->weights, mode == Mode::kSync
                                                 ? (std::vector<float>{0.0f, 0.5f})
                                                 : (std::vector<float>{0.5f, 0.0f}));
      // The update is counted: its optimizer step took 20 ms.
      EXPECT_EQ(ps.status().update_seconds, 0.02);
    }
  }
}

TEST_F(ParameterServerTest, ASyncRoundWaitsOnlyForLiveAggregatorsThatHaveWorkers) {
  auto ps = Make(2, 0);  // leases of 2 s
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a1", {"w1"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 1, {{"w0", 1}})).ok());
  clock_.AdvanceBy(absl::Seconds(1.5));
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  clock_.AdvanceBy(absl::Seconds(0.4));
  EXPECT_EQ(ps->LatestWeights()->version, 0);  // a1 may still come
  clock_.AdvanceBy(absl::Seconds(0.1));        // a1's lease ran out
  EXPECT_EQ(ps->LatestWeights()->version, 1);
  EXPECT_EQ(ps->status().live_aggregators, std::vector<std::string>{"a0"});
  // a1 is back, but its workers moved to a0: it is not waited for.
  clock_.AdvanceBy(absl::Seconds(0.5));
  ASSERT_TRUE(ps->Heartbeat(Beat("a1", {})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0", "w1"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 1, 2, {{"w0", 2}, {"w1", 3}})).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 2);
  EXPECT_EQ(ps->status().live_workers, (std::vector<std::string>{"w0", "w1"}));
}

TEST_F(ParameterServerTest, TheStatusNamesWhomTheOpenRoundWaitsForAndSinceWhen) {
  auto ps = Make(3, 0);
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a1", {"w1"})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a2", {})).ok());  // no workers: not waited for
  clock_.AdvanceBy(absl::Seconds(0.25));
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 1, {{"w0", 1}})).ok());
  clock_.AdvanceBy(absl::Seconds(0.5));
  RoundWait round = ps->status().round;
  EXPECT_EQ(round.version, 0);
  EXPECT_EQ(round.members, std::vector<std::string>{"a1"});
  EXPECT_DOUBLE_EQ(round.waited_s, 0.75);
  // The round closes; the next one opens now and waits for both again.
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a1", 0, 1, {{"w1", 1}})).ok());
  clock_.AdvanceBy(absl::Seconds(0.125));
  round = ps->status().round;
  EXPECT_EQ(round.version, 1);
  EXPECT_EQ(round.members, (std::vector<std::string>{"a0", "a1"}));
  EXPECT_DOUBLE_EQ(round.waited_s, 0.125);
}

TEST_F(ParameterServerTest, AnAggregatorBeyondMaxAggregatorsIsNotTakenIntoRounds) {
  ParameterServerOptions limited;
  limited.expected_aggregators = 2;
  limited.max_aggregators = 2;
  limited.optimizer.learning_rate = 0.5;
  auto ps = MakeWith(limited);
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a1", {"w1"})).ok());
  const absl::StatusOr<HeartbeatAnswer> third = ps->Heartbeat(Beat("a2", {"w2"}));
  EXPECT_TRUE(absl::IsResourceExhausted(third.status())) << third.status();
  EXPECT_NE(third.status().message().find("--max_aggregators"), std::string::npos);
  const absl::Status push = ps->AcceptAggregate(Aggregate("a2", 0, {50, 50}, 1, 1)).status();
  EXPECT_TRUE(absl::IsResourceExhausted(push)) << push;
  ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.live_aggregators, (std::vector<std::string>{"a0", "a1"}));
  EXPECT_EQ(s.aggregates_dropped.at("membership_full"), 1);
  EXPECT_EQ(s.gradients_dropped.at("membership_full"), 1);
  // The round is a0's and a1's alone.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {2, 4}, 2, 1)).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {6, 0}, 2, 1)).ok());
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.max_aggregators = 1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateParameterServerOptions(o)));
  // By default, at most the expected aggregators.
  o.max_aggregators = 0;
  ParameterServer defaults(o, *ModelLayout::Create({{"w", {2}}}),
                           std::make_unique<FakeSgd>(std::vector<float>{1, 1}));
  ASSERT_TRUE(defaults.Heartbeat(Beat("a0", {})).ok());
  ASSERT_TRUE(defaults.Heartbeat(Beat("a1", {})).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(defaults.Heartbeat(Beat("a2", {})).status()));
}

TEST_F(ParameterServerTest, ARestoredCheckpointContinuesTheRunAndRemembersWhatWasApplied) {
  ParameterServerOptions o;
  o.expected_aggregators = 1;
  o.mode = {Mode::kAsync, 0};
  o.optimizer.learning_rate = 0.5;
  o.optimizer.lr_schedule = "constant";
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 5, {{"w0", 50}})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 1, 6, {{"w0", 51}})).ok());
  absl::StatusOr<Checkpoint> c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, 2);
  EXPECT_EQ(c->data_positions.at("w0"), 2);  // steps 0 and 1 applied

  auto resumed = MakeWith(o);
  ASSERT_TRUE(resumed->Restore(*c).ok());
  EXPECT_EQ(resumed->LatestWeights()->version, 2);
  EXPECT_EQ(resumed->LatestWeights()->weights, ps->LatestWeights()->weights);
  EXPECT_EQ(resumed->status().resumed_from, 2);
  // What was applied before the restart is recognized after it.
  absl::StatusOr<PushResult> again = resumed->AcceptAggregate(Listed("a0", 1, 6, {{"w0", 51}}));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  again = resumed->AcceptAggregate(Listed("a1", 1, 1, {{"w0", 51}}));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  // A restarted worker learns where its data order continues.
  EXPECT_EQ(resumed->Heartbeat(Beat("a0", {"w0"}))->data_positions.at("w0"), 2);
  // Both go on identically.
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 2, 7, {{"w0", 52}})).ok());
  ASSERT_TRUE(resumed->AcceptAggregate(Listed("a0", 2, 7, {{"w0", 52}})).ok());
  EXPECT_EQ(resumed->LatestWeights()->weights, ps->LatestWeights()->weights);
  // Another model's checkpoint is refused.
  Checkpoint other = *c;
  other.layout = *ModelLayout::Create({{"w", {3}}});
  other.weights = {1, 2, 3};
  EXPECT_TRUE(absl::IsInvalidArgument(MakeWith(o)->Restore(other)));
}

// --fedavg_algorithm=scaffold: HQ serves [w; c] under the layout with
// control variates. A round's parameters step as in fedavg; c becomes the
// sample-weighted mean of the variates the homes sent (buffer slots). The
// run stays in fedavg, and a checkpoint holds c (and is refused by an HQ
// without variates, saying why).
TEST_F(ParameterServerTest, ScaffoldServesTheMeanVariateAfterTheWeightsAndKeepsIt) {
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.max_aggregators = 8;
  o.mode = ModeConfig{Mode::kFedAvg, 0, 1, 1.0};
  o.server_lr = 1.0;
  o.server_momentum = 0;
  o.control_variates = true;
  ASSERT_TRUE(ValidateParameterServerOptions(o).ok());
  o.clock = &clock_;
  const ModelLayout model = *ModelLayout::Create({{"w", {2}}});
  auto make = [&] {
    return std::make_unique<ParameterServer>(
        o, *WithControlVariates(model),
        std::make_unique<ControlVariateOptimizer>(
            std::make_unique<FakeSgd>(std::vector<float>{1, 1}), ParameterFloats(model)),
        nullptr);
  };
  auto ps = make();
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(1, 1, 0, 0));  // c starts at 0
  // Sums Σ n_i·[delta_i; c_i] of 1 and 3 samples.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {0.4f, 0, 2, 4}, 1, 1)).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a1", 0, {0, 0.8f, 6, 0}, 3, 2)).ok());
  // Mean delta [0.1, 0.2]; mean variate [8/4, 4/4].
  EXPECT_THAT(ps->LatestWeights()->weights,
              ElementsAre(FloatEq(0.9f), FloatEq(0.8f), FloatEq(2), FloatEq(1)));
  // Another mode would serve the variates to homes that cannot use them.
  EXPECT_TRUE(absl::IsFailedPrecondition(ps->SetMode(ModeConfig{Mode::kSync}).status()));
  ParameterServerOptions sync = o;
  sync.mode = ModeConfig{Mode::kSync};
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateParameterServerOptions(sync)));

  absl::StatusOr<Checkpoint> c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  auto resumed = make();
  ASSERT_TRUE(resumed->Restore(*c).ok());
  EXPECT_EQ(resumed->LatestWeights()->weights, ps->LatestWeights()->weights);
  // An HQ without variates (plain fedavg) refuses it and says why.
  o.control_variates = false;
  auto plain = std::make_unique<ParameterServer>(
      o, model, std::make_unique<FakeSgd>(std::vector<float>{1, 1}), nullptr);
  const absl::Status refused = plain->Restore(*c);
  EXPECT_TRUE(absl::IsInvalidArgument(refused));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("--fedavg_algorithm"));
}

// An aggregate from `id` of `version` that carries no gradient, only the
// workers whose gradients the aggregator refused as non-finite.
AggregatePush NonFiniteReport(const std::string& id, int64_t version, int64_t sequence,
                              std::vector<std::string> workers) {
  AggregatePush a = Aggregate(id, version, {}, 0, 0);
  a.loss_sum = 0;
  a.sequence = sequence;
  a.non_finite_workers = std::move(workers);
  return a;
}

TEST_F(ParameterServerTest, AStepThatMakesAWeightNonFiniteIsNeverPublishedAndStopsTheRun) {
  ParameterServerOptions o;
  o.expected_aggregators = 1;
  o.optimizer.learning_rate = 4;
  o.optimizer.lr_schedule = "constant";
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 0, {0.25f, 0}, 1, 1)).ok());
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(1.0f)));
  // A finite gradient, but 4 · 3e38 is not a float.
  ASSERT_TRUE(ps->AcceptAggregate(Aggregate("a0", 1, {3e38f, 0}, 1, 1)).ok());
  const ParameterServerStatus s = ps->status();
  EXPECT_TRUE(s.training_done);
  EXPECT_EQ(s.diverged_version, 1);
  EXPECT_EQ(s.diverged_reason, "a weight after the step is -inf at float 0 of 2");
  EXPECT_EQ(s.gradients_dropped.at("non_finite"), 1);
  EXPECT_EQ(s.gradients_applied, 1);
  ExpectAccountingHolds(s);
  // The run ends with the weights of version 1, published as version 2;
  // nothing non-finite was ever published.
  EXPECT_EQ(published_, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(1.0f)));
  EXPECT_TRUE(ps->LatestWeights()->training_done);
  EXPECT_FALSE(ps->AcceptAggregate(Aggregate("a0", 2, {1, 1}, 1, 1)).ok());
}

TEST_F(ParameterServerTest, RollsBackToTheBestWeightsWithASmallerRateThenStops) {
  ParameterServerOptions o;
  o.expected_aggregators = 1;
  o.optimizer.learning_rate = 0.5;
  o.optimizer.lr_schedule = "constant";
  o.divergence = {OnDivergence::kRollback, /*lr_factor=*/0.5, /*max_rollbacks=*/1};
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0", "w1"})).ok());
  // Version 0 (loss 0.5) takes w to [0.5, 1]; version 1's loss is 10.
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 1, {{"w0", 1}, {"w1", 2}})).ok());
  AggregatePush spiking = Listed("a0", 1, 2, {{"w0", 3}, {"w1", 4}});
  spiking.loss_sum = 20;
  spiking.sum = {2, 2};
  ASSERT_TRUE(ps->AcceptAggregate(spiking).ok());
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.0f), FloatEq(0.5f)));
  // One of the two workers non-finite, then both: not a divergence yet
  // (once is bad luck). The rounds applied nothing.
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 2, 3, {"w0"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 3, 4, {"w0", "w1"})).ok());
  EXPECT_EQ(ps->status().rollbacks, 0);
  EXPECT_EQ(ps->LatestWeights()->version, 4);
  // Both twice since the last finite update: back to the weights of
  // version 0 (the lowest running mean of the loss), at half the rate.
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 4, 5, {"w1"})).ok());
  ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.rollbacks, 1);
  EXPECT_EQ(s.diverged_version, -1);
  EXPECT_FALSE(s.training_done);
  EXPECT_EQ(ps->LatestWeights()->version, 5);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(1.0f), FloatEq(1.0f)));
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 5, 6, {{"w0", 5}, {"w1", 6}})).ok());
  EXPECT_DOUBLE_EQ(lrs_.back(), 0.25);
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.75f), FloatEq(1.0f)));
  // A restarted HQ keeps the rate and the count.
  absl::StatusOr<Checkpoint> c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  auto resumed = MakeWith(o);
  ASSERT_TRUE(resumed->Restore(*c).ok());
  EXPECT_EQ(resumed->status().rollbacks, 1);
  // No rollback left: the next divergence stops the run with the last
  // weights published.
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 6, 7, {"w0", "w1"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 7, 8, {"w0", "w1"})).ok());
  s = ps->status();
  EXPECT_TRUE(s.training_done);
  EXPECT_EQ(s.diverged_version, 7);
  EXPECT_THAT(s.diverged_reason, ::testing::HasSubstr("non-finite (2 workers"));
  EXPECT_THAT(ps->LatestWeights()->weights, ElementsAre(FloatEq(0.75f), FloatEq(1.0f)));
  ExpectAccountingHolds(s);
  c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  resumed = MakeWith(o);
  ASSERT_TRUE(resumed->Restore(*c).ok());
  EXPECT_EQ(resumed->status().diverged_version, 7);
  EXPECT_EQ(resumed->status().diverged_reason, s.diverged_reason);
  EXPECT_TRUE(resumed->status().training_done);
}

// A rollback starts a new line of weights: a gradient computed on the old
// line (a paused member's, arriving late) is refused, not applied to the
// weights HQ went back to.
TEST_F(ParameterServerTest, AfterARollbackWhatWasComputedOnTheOldLineIsRefused) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.expected_aggregators = 1;
  o.divergence = {OnDivergence::kRollback, 0.5, 3};
  auto ps = MakeWith(o);
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 0, 1, {{"w0", 1}})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 1, 2, {{"w0", 2}})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 2, 3, {"w0"})).ok());
  ASSERT_TRUE(ps->AcceptAggregate(NonFiniteReport("a0", 2, 4, {"w0"})).ok());
  ASSERT_EQ(ps->status().rollbacks, 1);
  ASSERT_EQ(ps->LatestWeights()->version, 3);
  EXPECT_EQ(ps->LatestWeights()->mode_since, 3);
  const int64_t applied = ps->status().gradients_applied;
  absl::StatusOr<PushResult> old_line = ps->AcceptAggregate(Listed("a0", 2, 5, {{"w0", 5}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(old_line.status())) << old_line.status();
  EXPECT_THAT(std::string(old_line.status().message()), ::testing::HasSubstr("rolled back"));
  EXPECT_EQ(ps->status().gradients_applied, applied);
  EXPECT_EQ(ps->status().gradients_dropped.at("mode_changed"), 1);
  ASSERT_TRUE(ps->AcceptAggregate(Listed("a0", 3, 6, {{"w0", 6}})).ok());
  EXPECT_EQ(ps->status().gradients_applied, applied + 1);
}

// An aggregate of another HQ incarnation's weights (sent before HQ
// restarted) is refused: the versions after the checkpoint HQ resumed from
// are another line.
TEST_F(ParameterServerTest, AnAggregateOfAnotherHqIncarnationIsRefused) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.incarnation = 500;
  auto ps = MakeWith(o);
  AggregatePush old_line = Listed("a0", 0, 1, {{"w0", 1}});
  old_line.hq_incarnation = 499;
  absl::StatusOr<PushResult> refused = ps->AcceptAggregate(old_line);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(ps->status().aggregates_dropped.at("hq_restarted"), 1);
  EXPECT_EQ(ps->LatestWeights()->version, 0);
  AggregatePush current = Listed("a0", 0, 2, {{"w0", 2}});
  current.hq_incarnation = 500;
  ASSERT_TRUE(ps->AcceptAggregate(current).ok());
  EXPECT_EQ(ps->LatestWeights()->version, 1);
}

// Every class of refusal ends its aggregator's part of the round: the
// version moves on without waiting for an aggregate that will not come.
TEST_F(ParameterServerTest, EveryRefusalSettlesItsRound) {
  auto ps = Make(2, 0);
  ASSERT_TRUE(ps->Heartbeat(Beat("a0", {"w0"})).ok());
  ASSERT_TRUE(ps->Heartbeat(Beat("a1", {"w1"})).ok());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int64_t sequence = 0;
  auto from = [&](const std::string& id, int64_t version, std::vector<float> sum) {
    AggregatePush a = Listed(id, version, ++sequence, {{id == "a0" ? "w0" : "w1", sequence}});
    a.sum = std::move(sum);
    return a;
  };
  struct Case {
    std::string name;
    std::function<absl::Status(int64_t version)> refuse;  // a1's part
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"a header refused by the adapter (e.g. --max_batch_samples smaller than the "
       "aggregators')",
       [&](int64_t version) {
         ps->RecordRefusal(DropReason::kInvalid, "a1", version);
         return absl::InvalidArgumentError("refused by the adapter");
       },
       "invalid"},
      {"a NaN in the sum",
       [&](int64_t v) {
         return ps->AcceptAggregate(from("a1", v, {nan, 0})).status();
       },
       "non_finite"},
      {"a wrong number of floats",
       [&](int64_t v) {
         return ps->AcceptAggregate(from("a1", v, {1, 1, 1})).status();
       },
       "invalid"},
      {"a sum that would overflow",
       [&](int64_t v) {
         return ps->AcceptAggregate(from("a1", v, {3e38f, 0})).status();
       },
       "non_finite"},
  };
  int64_t version = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // (Large enough that a1's 3e38 would overflow the sum.)
    ASSERT_TRUE(ps->AcceptAggregate(from("a0", version, {1e38f, 0})).ok());
    EXPECT_FALSE(c.refuse(version).ok());
    ASSERT_EQ(ps->LatestWeights()->version, version + 1);
    EXPECT_GE(ps->status().aggregates_dropped.at(c.reason), 1);
    ++version;
    // Only a0's gradient was applied: w0 = 1 - 0.5 · 1e38 · version.
    EXPECT_THAT(ps->LatestWeights()->weights,
                ElementsAre(FloatEq(1 - 0.5e38f * static_cast<float>(version)), FloatEq(1.0f)));
  }
  // Every aggregate of a round refused: the version moves on unchanged.
  const std::vector<float> before = ps->LatestWeights()->weights;
  EXPECT_FALSE(ps->AcceptAggregate(from("a0", version, {1})).ok());
  ps->RecordRefusal(DropReason::kInvalid, "a1", version);
  EXPECT_EQ(ps->LatestWeights()->version, version + 1);
  EXPECT_EQ(ps->LatestWeights()->weights, before);
  ExpectAccountingHolds(ps->status());
  EXPECT_EQ(ps->status().diverged_version, -1);
}

// Bounded state (docs/faults.md): 100,000 distinct workers, one a
// millisecond on the test's clock, each reported live by its aggregator,
// pushing one gradient and leaving. HQ's tables stay at the workers of the
// last kRetentionLeases leases (10 s here: 10,000), not everyone it saw,
// and so does what a checkpoint holds; a forgotten worker's late repeat is
// refused, never applied twice.
TEST_F(ParameterServerTest, ASoakOf100000WorkersThatComeAndGoKeepsItsTablesBounded) {
  ParameterServerOptions o = AsyncOptions(Mode::kAsync);
  o.expected_aggregators = 4;
  auto ps = MakeWith(o);
  constexpr int kWorkers = 100000;
  const double rss_before = ResidentMiB();
  std::vector<std::deque<std::string>> live(4);
  std::vector<int64_t> sequence(4, 0);
  ParameterServer::Tables most;
  for (int i = 0; i < kWorkers; ++i) {
    const int a = i % 4;
    const std::string agg = absl::StrCat("a", a);
    const std::string worker = absl::StrCat("w", i);
    live[a].push_back(worker);
    if (live[a].size() > 3) live[a].pop_front();  // each stays a few milliseconds
    ASSERT_TRUE(ps->Heartbeat(Beat(agg, {live[a].begin(), live[a].end()})).ok());
    const int64_t version = ps->LatestWeights()->version;
    ASSERT_TRUE(ps->AcceptAggregate(Listed(agg, version, ++sequence[a], {{worker, 1}})).ok());
    clock_.AdvanceBy(absl::Milliseconds(1));
    if (i % 1000 == 0) {
      const ParameterServer::Tables t = ps->tables();
      most.worker_ledger = std::max(most.worker_ledger, t.worker_ledger);
      most.data_positions = std::max(most.data_positions, t.data_positions);
      most.remembered = std::max(most.remembered, t.remembered);
    }
  }
  const double rss_after = ResidentMiB();
  // 10 s of workers (10,000) plus a quarter of that between sweeps.
  EXPECT_LE(most.worker_ledger, 12600u);
  EXPECT_LE(most.data_positions, 12600u);
  EXPECT_LE(most.remembered, 12600u + 4);
  EXPECT_GE(most.worker_ledger, 10000u);  // it does remember the recent ones
  EXPECT_EQ(ps->tables().aggregator_ledger, 4u);
  absl::StatusOr<Checkpoint> c = ps->Capture();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_LE(c->sequences.size(), 12600u + 4);
  EXPECT_GT(c->forgotten_before, 0);
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.gradients_applied, kWorkers);
  // w0's gradient again (a retry that arrives late): HQ forgot w0 and
  // cannot tell, so it refuses it, as stale.
  absl::StatusOr<PushResult> late =
      ps->AcceptAggregate(Listed("a0", 0, ++sequence[0], {{"w0", 1}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status())) << late.status();
  EXPECT_THAT(std::string(late.status().message()), ::testing::HasSubstr("no longer remembers"));
  EXPECT_EQ(ps->status().gradients_applied, kWorkers);
  // A new worker's gradient on recent weights goes in.
  ASSERT_TRUE(ps->AcceptAggregate(
                    Listed("a0", ps->LatestWeights()->version, ++sequence[0], {{"newcomer", 1}}))
                  .ok());
  EXPECT_EQ(ps->status().gradients_applied, kWorkers + 1);
  ExpectAccountingHolds(ps->status());
  std::printf(
      "HQ soak: %d workers, tables at most %zu entries, resident %.1f MiB before, %.1f "
      "after\n",
      kWorkers, most.worker_ledger, rss_before, rss_after);
}

// Aggregators on threads of their own push at once while others read the
// status and heartbeat: each aggregate is applied once, in some order, and
// the status adds up (the ThreadSanitizer run checks the locking).
TEST_F(ParameterServerTest, ConcurrentAggregatesAreEachAppliedOnce) {
  constexpr int kAggregators = 4;
  constexpr int kPushes = 50;
  auto ps = MakeWith(AsyncOptions(Mode::kAsync));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int a = 0; a < kAggregators; ++a) {
    threads.emplace_back([&, a] {
      const std::string id = absl::StrCat("a", a);
      for (int i = 0; i < kPushes; ++i) {
        ASSERT_TRUE(ps->Heartbeat(Beat(id, {absl::StrCat("w", a)})).ok());
        AggregatePush push = Aggregate(id, ps->LatestWeights()->version, {1, 1}, 2, 1);
        push.sequence = i + 1;
        push.contributor_list = {{absl::StrCat("w", a), i + 1, push.version, i}};
        if (!ps->AcceptAggregate(push).ok()) ++failures;
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < kAggregators * kPushes; ++i) ExpectAccountingHolds(ps->status());
  });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const ParameterServerStatus s = ps->status();
  EXPECT_EQ(s.version, kAggregators * kPushes);
  EXPECT_EQ(s.gradients_applied, kAggregators * kPushes);
  EXPECT_EQ(s.samples_applied, 2 * kAggregators * kPushes);
  EXPECT_EQ(s.staleness.total(), kAggregators * kPushes);
  EXPECT_EQ(lrs_.size(), static_cast<size_t>(kAggregators * kPushes));
  ExpectAccountingHolds(s);
}

}  // namespace
}  // namespace hips
