#include "hq/divergence_guard.h"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const WeightsSnapshot> At(int64_t version) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  s->weights = {static_cast<float>(version)};
  return s;
}

TEST(FirstNonFiniteTest, NamesTheFirstNonFiniteFloatAndItsPlace) {
  std::vector<float> v(1000, 1.0f);
  EXPECT_EQ(FirstNonFinite(v, "a weight"), std::nullopt);
  v[700] = -std::numeric_limits<float>::infinity();
  v[900] = std::numeric_limits<float>::quiet_NaN();
  std::optional<std::string> why = FirstNonFinite(v, "a weight");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "a weight is -inf at float 700 of 1000");
  // The largest finite float is finite.
  EXPECT_EQ(FirstNonFinite(std::vector<float>{std::numeric_limits<float>::max()}, "x"),
            std::nullopt);
  EXPECT_EQ(FirstNonFinite({}, "x"), std::nullopt);
}

TEST(DivergenceGuardTest, DivergesOnceEveryLiveWorkerWasNonFiniteTwiceSinceTheLastFiniteUpdate) {
  DivergenceGuard guard;
  const DivergenceGuard::LiveWorkers live = {{"a0", std::vector<std::string>{"w0", "w1"}},
                                             {"a1", std::vector<std::string>{"w2"}}};
  for (int i = 0; i < 2; ++i) {
    guard.NonFinite("a0", {"w0"});
    guard.NonFinite("a1", {"w2"});
  }
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);  // w1 was fine
  // A finite update in between: the counts start over.
  guard.Finite(At(3), 1.0);
  guard.NonFinite("a0", {"w0", "w1"});
  guard.NonFinite("a1", {"w2"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);  // once each: bad luck
  guard.NonFinite("a0", {"w0", "w1"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);  // w2 once
  // w2 through another aggregator does not count for a1's workers.
  guard.NonFinite("a0", {"w2"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);
  guard.NonFinite("a1", {"w2"});
  std::optional<std::string> why = guard.EveryGradientNonFinite(live);
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("(3 workers, at least 2 gradients each)"));
  // An aggregator that reported no worker does not stand in the way.
  DivergenceGuard::LiveWorkers with_idle = live;
  with_idle["a2"] = std::vector<std::string>{};
  EXPECT_TRUE(guard.EveryGradientNonFinite(with_idle).has_value());
  // Nobody live: nothing to judge.
  EXPECT_EQ(guard.EveryGradientNonFinite({}), std::nullopt);
  EXPECT_EQ(guard.EveryGradientNonFinite({{"a0", std::vector<std::string>{}}}), std::nullopt);
}

TEST(DivergenceGuardTest, AnAggregatorThatHasNotReportedCountsWithTheWorkersItNamed) {
  DivergenceGuard guard;
  DivergenceGuard::LiveWorkers live = {{"a0", std::nullopt}, {"a1", std::nullopt}};
  guard.NonFinite("a0", {"w0"});
  guard.NonFinite("a0", {"w0"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);  // a1 named none
  guard.NonFinite("a1", {"w1", "w2"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);
  guard.NonFinite("a1", {"w1"});
  EXPECT_EQ(guard.EveryGradientNonFinite(live), std::nullopt);  // w2 once
  guard.NonFinite("a1", {"w2"});
  std::optional<std::string> why = guard.EveryGradientNonFinite(live);
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("(3 workers"));
  guard.NonFinite("a1", {});  // an empty report changes nothing
  EXPECT_TRUE(guard.EveryGradientNonFinite(live).has_value());
}

TEST(DivergenceGuardTest, RollsBackToWhereTheRunningMeanOfTheLossWasLowest) {
  DivergenceGuard guard;
  EXPECT_EQ(guard.rollback_point(), nullptr);
  guard.Finite(At(0), 2.0);  // mean 2
  EXPECT_EQ(guard.rollback_point()->version, 0);
  guard.Finite(At(1), 1.0);  // mean 0.9·2 + 0.1·1 = 1.9
  EXPECT_DOUBLE_EQ(guard.mean_loss(), 1.9);
  EXPECT_EQ(guard.rollback_point()->version, 1);
  guard.Finite(At(2), 3.0);  // 1.71 + 0.3 = 2.01: above the best, kept at 1
  EXPECT_DOUBLE_EQ(guard.mean_loss(), 2.01);
  EXPECT_EQ(guard.rollback_point()->version, 1);
  guard.Finite(At(3), 1e30);  // a spike: neither the point nor the best move
  EXPECT_EQ(guard.rollback_point()->version, 1);
  guard.Finite(At(4), std::numeric_limits<double>::quiet_NaN());  // not a loss
  EXPECT_EQ(guard.rollback_point()->version, 1);
  EXPECT_DOUBLE_EQ(guard.best_mean_loss(), 1.9);
  // After the rollback the mean starts over from the point's: the next
  // finite loss at or below it moves the point on.
  guard.Reset();
  EXPECT_DOUBLE_EQ(guard.mean_loss(), 1.9);
  guard.Finite(At(6), 1.9);
  EXPECT_EQ(guard.rollback_point()->version, 6);
}

}  // namespace
}  // namespace hips
