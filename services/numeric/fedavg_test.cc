#include "services/numeric/fedavg.h"

#include <cmath>
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

}  // namespace
}  // namespace hips
