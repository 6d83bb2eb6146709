#include "services/core/fedavg.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/core/consistency.h"

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
