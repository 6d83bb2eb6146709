#include "services/types/eval_metrics.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(ClassificationMetricsTest, MatchesHandComputedAccuracyAndMacroF1) {
  // Class 0: TP=2 FP=1 FN=0 -> F1 = 4/5. Class 1: TP=1 FP=1 FN=1 -> 1/2.
  // Class 2: TP=0 FP=0 FN=1 -> 0. Class 3 never appears: left out.
  const std::vector<int64_t> labels = {0, 0, 1, 1, 2};
  const std::vector<int64_t> preds = {0, 0, 1, 0, 1};
  absl::StatusOr<EvalMetrics> m = ComputeClassificationMetrics(preds, labels, 4);
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(m->accuracy, 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(m->macro_f1, (4.0 / 5.0 + 1.0 / 2.0 + 0.0) / 3.0);
  EXPECT_EQ(m->examples, 5);
}

TEST(ClassificationMetricsTest, PerfectPredictionsScoreOne) {
  const std::vector<int64_t> y = {0, 1, 2, 2};
  absl::StatusOr<EvalMetrics> m = ComputeClassificationMetrics(y, y, 3);
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(m->accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m->macro_f1, 1.0);
}

TEST(ClassificationMetricsTest, RefusesMismatchedOrOutOfRangeInput) {
  const std::vector<int64_t> a = {0, 1}, b = {0}, c = {0, 5};
  EXPECT_FALSE(ComputeClassificationMetrics(a, b, 2).ok());
  EXPECT_FALSE(ComputeClassificationMetrics(c, a, 2).ok());
}

TEST(RegressionMetricsTest, RmseAndR2AgainstHandComputedValues) {
  // Targets 1, 2, 3, 4 (mean 2.5, SST 5); errors 0.5, -0.5, 0, 1: SSE 1.5.
  absl::StatusOr<EvalMetrics> m =
      ComputeRegressionMetrics({1.5f, 1.5f, 3.0f, 5.0f}, {1, 2, 3, 4}, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->regression);
  EXPECT_EQ(m->examples, 2);
  EXPECT_DOUBLE_EQ(m->rmse, std::sqrt(1.5 / 4));
  EXPECT_DOUBLE_EQ(m->r2, 1 - 1.5 / 5);
  // Predicting the mean scores 0; constant targets have no R².
  EXPECT_DOUBLE_EQ(ComputeRegressionMetrics({2.5f, 2.5f}, {2, 3}, 2)->r2, 0.0);
  EXPECT_DOUBLE_EQ(ComputeRegressionMetrics({1, 2}, {7, 7}, 2)->r2, 0.0);
  EXPECT_FALSE(ComputeRegressionMetrics({1}, {1, 2}, 1).ok());
}

}  // namespace
}  // namespace hips
