#include "services/numeric/fedavg.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/types/consistency.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

std::vector<float> Delta(const LocalTrainer& t, size_t n) {
  std::vector<float> out(n);
  t.DeltaInto(absl::MakeSpan(out));
  return out;
}

// Two steps by hand, torch's SGD rule (d = g + wd·w; buf = d, then
// μ·buf + d; w -= lr·buf), float 2 a buffer whose value travels.
TEST(LocalTrainerTest, TwoStepsWithMomentumAndWeightDecayMatchTheHandComputation) {
  LocalTrainer t(4, {FloatRange{2, 1}});
  const LocalSgd sgd{/*lr=*/0.1, /*momentum=*/0.5, /*nesterov=*/false, /*weight_decay=*/0.1};
  const std::vector<float> w0 = {1, 2, 10, 4};
  t.Begin(w0);
  t.Step(std::vector<float>{1, -1, 7, 0}, sgd);
  EXPECT_THAT(t.weights(), Pointwise(FloatNear(1e-6), std::vector<float>{0.89f, 2.08f, 7, 3.96f}));
  t.Step(std::vector<float>{1, 1, 8, 0}, sgd);
  EXPECT_THAT(t.weights(),
              Pointwise(FloatNear(1e-6), std::vector<float>{0.7261f, 1.9992f, 8, 3.9004f}));
  EXPECT_EQ(t.steps(), 2);
  // start − end for parameters, the newest value for the buffer.
  EXPECT_THAT(Delta(t, 4),
              Pointwise(FloatNear(1e-6), std::vector<float>{0.2739f, 0.0008f, 8, 0.0996f}));

  // A new round starts without the old momentum: its first step is the
  // first step of the round above.
  t.Begin(w0);
  t.Step(std::vector<float>{1, -1, 7, 0}, sgd);
  EXPECT_THAT(t.weights(), Pointwise(FloatNear(1e-6), std::vector<float>{0.89f, 2.08f, 7, 3.96f}));
  EXPECT_EQ(t.steps(), 1);
}

TEST(LocalTrainerTest, NesterovLooksAheadAlongTheMomentum) {
  LocalTrainer t(1, {});
  const LocalSgd sgd{0.1, 0.5, /*nesterov=*/true, 0};
  t.Begin(std::vector<float>{1});
  t.Step(std::vector<float>{1}, sgd);  // buf 1, step 1 + 0.5·1
  EXPECT_THAT(t.weights(), ElementsAre(FloatNear(0.85f, 1e-6)));
  t.Step(std::vector<float>{1}, sgd);  // buf 1.5, step 1 + 0.75
  EXPECT_THAT(t.weights(), ElementsAre(FloatNear(0.675f, 1e-6)));
}

// One local step pushes lr·(g + wd·w) whatever the momentum: the delta a
// sync gradient would be, times the learning rate (what makes fedavg with
// H = 1 equal to sync).
TEST(LocalTrainerTest, OneStepPushesTheLearningRateTimesTheGradient) {
  for (double momentum : {0.0, 0.9}) {
    LocalTrainer t(3, {});
    t.Begin(std::vector<float>{1, -2, 3});
    t.Step(std::vector<float>{0.5f, 0.25f, -1}, LocalSgd{0.2, momentum, false, 0.01});
    EXPECT_THAT(Delta(t, 3), Pointwise(FloatNear(1e-7), std::vector<float>{0.2f * (0.5f + 0.01f),
                                                                           0.2f * (0.25f - 0.02f),
                                                                           0.2f * (-1 + 0.03f)}))
        << momentum;
  }
}

// FedProx by hand: d = g + mu·(w - w_round) + wd·w, then torch's SGD rule.
// The first step sits on the round's weights, so its proximal term is 0;
// the buffer (float 1) is not trained and keeps its value.
TEST(LocalTrainerTest, FedProxAddsMuTimesTheDistanceToTheRoundsWeights) {
  LocalTrainer t(3, {FloatRange{1, 1}});
  const LocalSgd sgd{/*lr=*/0.1, /*momentum=*/0.5, /*nesterov=*/false, /*weight_decay=*/0.1};
  t.Begin(std::vector<float>{1, 5, -2});
  t.Step(std::vector<float>{2, 9, 1}, sgd, /*proximal_mu=*/0.5);
  // d = (2 + 0 + 0.1, 1 + 0 - 0.2) = (2.1, 0.8); w = (0.79, -2.08).
  EXPECT_THAT(t.weights(), Pointwise(FloatNear(1e-6), std::vector<float>{0.79f, 9, -2.08f}));
  t.Step(std::vector<float>{1, 7, -1}, sgd, 0.5);
  // d = 1 + 0.5·(0.79 - 1) + 0.1·0.79 = 0.974, buf = 0.5·2.1 + 0.974 = 2.024;
  // d = -1 + 0.5·(-2.08 + 2) - 0.208 = -1.248, buf = 0.4 - 1.248 = -0.848.
  EXPECT_THAT(t.weights(),
              Pointwise(FloatNear(1e-6), std::vector<float>{0.79f - 0.2024f, 7, -2.08f + 0.0848f}));
}

// FedProx with mu = 0 is fedavg, bit for bit, over several steps with
// momentum and weight decay.
TEST(LocalTrainerTest, FedProxWithMuZeroIsFedAvgBitForBit) {
  const LocalSgd sgd{0.05, 0.9, /*nesterov=*/true, 1e-3};
  LocalTrainer plain(5, {FloatRange{3, 1}});
  LocalTrainer prox(5, {FloatRange{3, 1}});
  const std::vector<float> w0 = {0.3f, -1.7f, 2.25f, 4, 1e-3f};
  plain.Begin(w0);
  prox.Begin(w0);
  for (int step = 0; step < 6; ++step) {
    std::vector<float> g(5);
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(0.7f * step + 1.3f * i) * 3;
    plain.Step(g, sgd);
    prox.Step(g, sgd, /*proximal_mu=*/0.0);
  }
  const std::vector<float> a = Delta(plain, 5);
  const std::vector<float> b = Delta(prox, 5);
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a[i], 4);
    std::memcpy(&y, &b[i], 4);
    EXPECT_EQ(x, y) << i;
  }
}

// A large mu holds the replica near the round's weights: the delta shrinks
// as mu grows (the same gradients every step).
TEST(LocalTrainerTest, FedProxShrinksTheDeltaAsMuGrows) {
  const LocalSgd sgd{0.1, 0, false, 0};
  double previous = 1e9;
  for (double mu : {0.0, 0.5, 2.0, 8.0}) {
    LocalTrainer t(1, {});
    t.Begin(std::vector<float>{0});
    for (int step = 0; step < 10; ++step) t.Step(std::vector<float>{1}, sgd, mu);
    const double delta = Delta(t, 1)[0];
    EXPECT_LT(delta, previous) << mu;
    EXPECT_GT(delta, 0) << mu;
    previous = delta;
  }
  // mu = 8, lr = 0.1: w_{k+1} = 0.2·w_k - 0.1 tends to -0.125.
  EXPECT_NEAR(previous, 0.125, 1e-6);
}

TEST(LocalSgdTest, BadSettingsAreRefused) {
  EXPECT_TRUE(ValidateLocalSgd({0.05, 0.9, true, 1e-4}).ok());
  EXPECT_TRUE(ValidateLocalSgd({0, 0, false, 0}).ok());  // a schedule's last rate
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const LocalSgd& bad :
       std::vector<LocalSgd>{{-0.1, 0, false, 0},
                             {nan, 0, false, 0},
                             {std::numeric_limits<double>::infinity(), 0, false, 0},
                             {0.1, 1.0, false, 0},
                             {0.1, -0.1, false, 0},
                             {0.1, nan, false, 0},
                             {0.1, 0.9, false, -1},
                             {0.1, 0.9, false, nan},
                             {0.1, 0, true, 0}}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateLocalSgd(bad)))
        << bad.lr << " " << bad.momentum << " " << bad.nesterov << " " << bad.weight_decay;
  }
}

// An edge round by hand: deltas {2, -4 | 3} over 10 samples and {6, 0 | 5}
// over 30 sum to {200, -40 | 180} over 40; the mean delta {5, -1} moves the
// parameters, the buffer takes the mean value 4.5.
TEST(EdgeRoundsTest, ARoundMovesTheCopyByTheSampleWeightedMeanDelta) {
  const std::vector<FloatRange> buffers = {FloatRange{2, 1}};
  std::vector<float> copy = {10, 20, 0.5f};
  ApplyEdgeRound(std::vector<float>{200, -40, 180}, 40, buffers, absl::MakeSpan(copy));
  EXPECT_THAT(copy, ElementsAre(5, 21, 4.5f));
  // Nobody pushed: nothing moves.
  ApplyEdgeRound(std::vector<float>{0, 0, 0}, 0, buffers, absl::MakeSpan(copy));
  EXPECT_THAT(copy, ElementsAre(5, 21, 4.5f));
  // Buffers anywhere: first and last.
  std::vector<float> edges = {1, 1, 1, 1};
  ApplyEdgeRound(std::vector<float>{8, 4, 4, 8}, 4, {FloatRange{0, 1}, FloatRange{3, 1}},
                 absl::MakeSpan(edges));
  EXPECT_THAT(edges, ElementsAre(2, 0, 0, 2));
}

// HQ's aggregate from the version's weights {10, 20 | 0.5} and the copy
// {5, 21 | 4.5} after rounds of 96 samples in all: {5·96, -1·96 | 4.5·96},
// so that HQ's mean (sum / 96) is the copy's delta and the copy's buffer.
TEST(EdgeRoundsTest, TheAggregateIsTheCopysDeltaWeightedByEverySample) {
  std::vector<float> out(3);
  EdgeAggregateInto(std::vector<float>{10, 20, 0.5f}, std::vector<float>{5, 21, 4.5f}, 96,
                    {FloatRange{2, 1}}, absl::MakeSpan(out));
  EXPECT_THAT(out, ElementsAre(480, -96, 432));
  // Without buffers, and a copy that never moved: a zero delta.
  EdgeAggregateInto(std::vector<float>{1, 2, 3}, std::vector<float>{1, 2, 3}, 7, {},
                    absl::MakeSpan(out));
  EXPECT_THAT(out, ElementsAre(0, 0, 0));
}

TEST(FedAvgModeTest, ParsesValidatesAndDescribes) {
  EXPECT_EQ(*ParseMode("fedavg"), Mode::kFedAvg);
  EXPECT_EQ(*MakeModeConfig("fedavg", 3, 10, 0.5), (ModeConfig{Mode::kFedAvg, 0, 10, 0.5}));
  // The fedavg knobs count for fedavg only.
  EXPECT_EQ(*MakeModeConfig("sync", 3, 10, 0.5), (ModeConfig{Mode::kSync, 0}));
  EXPECT_EQ(*MakeModeConfig("ssp", 3, 10, 0.5), (ModeConfig{Mode::kSsp, 3}));
  for (int64_t h : {int64_t{0}, int64_t{-1}, kMaxLocalSteps + 1}) {
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("fedavg", 0, h, 1.0).status())) << h;
  }
  for (double f : {0.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("fedavg", 0, 10, f).status())) << f;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig({Mode::kSync, 0, 5, 1.0})));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig({Mode::kAsync, 0, 1, 0.5})));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig({Mode::kFedAvg, 2, 5, 1.0})));
  EXPECT_EQ(DescribeMode({Mode::kFedAvg, 0, 10, 1.0}), "fedavg(H=10)");
  EXPECT_EQ(DescribeMode({Mode::kFedAvg, 0, 10, 0.5}), "fedavg(H=10,F=0.5)");
  EXPECT_EQ(DescribeMode({Mode::kFedAvg, 0, 10, 1.0, 4}), "fedavg(H=10,E=4)");
  EXPECT_EQ(DescribeMode({Mode::kFedAvg, 0, 10, 0.5, 4}), "fedavg(H=10,F=0.5,E=4)");
  EXPECT_EQ(*MakeModeConfig("fedavg", 0, 10, 1.0, 4), (ModeConfig{Mode::kFedAvg, 0, 10, 1.0, 4}));
  EXPECT_EQ(*MakeModeConfig("sync", 0, 10, 1.0, 4), (ModeConfig{Mode::kSync, 0}));
  for (int64_t e : {int64_t{0}, int64_t{-2}, kMaxEdgeRounds + 1}) {
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("fedavg", 0, 10, 1.0, e).status())) << e;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig({Mode::kSync, 0, 1, 1.0, 2})));
  EXPECT_TRUE(UsesRounds(Mode::kFedAvg));
  EXPECT_TRUE(UsesRounds(Mode::kSync));
  EXPECT_FALSE(UsesRounds(Mode::kAsync));
}

TEST(ModeConfigTest, FedProxAndHqBufferShapeOnlyTheirModes) {
  ModeKnobs k;
  k.proximal_mu = 0.01;
  k.hq_buffer = 3;
  k.staleness_weighting = StalenessWeighting::kPolynomial;
  k.staleness_exponent = 0.5;
  k.local_steps = 10;
  absl::StatusOr<ModeConfig> fedavg = MakeModeConfig("fedavg", k);
  ASSERT_TRUE(fedavg.ok()) << fedavg.status();
  EXPECT_EQ(fedavg->proximal_mu, 0.01);
  EXPECT_EQ(fedavg->hq_buffer, 3);
  EXPECT_EQ(DescribeMode(*fedavg), "fedavg(H=10,mu=0.01,B=3,poly=0.5)");
  // sync takes the buffer, not the proximal term; async and ssp neither.
  absl::StatusOr<ModeConfig> sync = MakeModeConfig("sync", k);
  ASSERT_TRUE(sync.ok()) << sync.status();
  EXPECT_EQ(sync->proximal_mu, 0);
  EXPECT_EQ(DescribeMode(*sync), "sync(B=3,poly=0.5)");
  EXPECT_EQ(*MakeModeConfig("async", k), (ModeConfig{Mode::kAsync}));
  // A constant weighting leaves the exponent at its default, whatever given.
  k.staleness_weighting = StalenessWeighting::kConstant;
  k.staleness_exponent = -7;
  EXPECT_EQ(DescribeMode(*MakeModeConfig("sync", k)), "sync(B=3)");

  ModeConfig bad{Mode::kSync};
  bad.proximal_mu = 0.1;  // not fedavg
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig(bad)));
  bad = ModeConfig{Mode::kAsync};
  bad.hq_buffer = 2;  // not a mode of rounds
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig(bad)));
  bad = ModeConfig{Mode::kSync};
  bad.staleness_weighting = StalenessWeighting::kPolynomial;  // without a buffer
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateModeConfig(bad)));
  for (double e : {0.0, -1.0, 10.5, std::numeric_limits<double>::quiet_NaN()}) {
    ModeKnobs b;
    b.hq_buffer = 2;
    b.staleness_weighting = StalenessWeighting::kPolynomial;
    b.staleness_exponent = e;
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("sync", b).status())) << e;
  }
  for (double mu : {-0.1, 1001.0, std::numeric_limits<double>::infinity(),
                    std::numeric_limits<double>::quiet_NaN()}) {
    ModeKnobs b;
    b.proximal_mu = mu;
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("fedavg", b).status())) << mu;
  }
  for (int64_t buffer : {int64_t{-1}, kMaxHqBuffer + 1}) {
    ModeKnobs b;
    b.hq_buffer = buffer;
    EXPECT_TRUE(absl::IsInvalidArgument(MakeModeConfig("fedavg", b).status())) << buffer;
  }
}

TEST(ModeConfigTest, StalenessWeightsByHand) {
  ModeConfig m{Mode::kSync};
  m.hq_buffer = 2;
  EXPECT_EQ(StalenessWeight(m, 0), 1.0);
  EXPECT_EQ(StalenessWeight(m, 9), 1.0);
  m.staleness_weighting = StalenessWeighting::kPolynomial;
  EXPECT_DOUBLE_EQ(StalenessWeight(m, 0), 1.0);
  EXPECT_DOUBLE_EQ(StalenessWeight(m, 3), 0.5);  // (1 + 3)^-0.5
  m.staleness_exponent = 2;
  EXPECT_DOUBLE_EQ(StalenessWeight(m, 4), 1.0 / 25);
  EXPECT_TRUE(ParseStalenessWeighting("polynomial").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ParseStalenessWeighting("hinge").status()));
}

}  // namespace
}  // namespace hips
