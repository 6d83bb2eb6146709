#include "services/numeric/robust_mean.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/types/drop_reason.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

std::vector<float> Combine(const std::vector<std::vector<float>>& rows, size_t trim,
                           float scale = 1) {
  std::vector<ScaledRow> pointers;
  for (const auto& r : rows) pointers.push_back({r.data(), 1.0f});
  std::vector<float> out(rows[0].size(), -1);
  TrimmedMeanInto(pointers, trim, scale, absl::MakeSpan(out));
  return out;
}

TEST(RobustMeanTest, HandComputedCoordinates) {
  // Coordinate 0: {1, 100, 3} -> median 3; coordinate 1: {-1e30, 2, 4} -> 2;
  // coordinate 2: {5, 5, 5} -> 5.
  EXPECT_THAT(Combine({{1, -1e30f, 5}, {100, 2, 5}, {3, 4, 5}}, 1), ElementsAre(3, 2, 5));
  // No trimming: the plain mean, times the scale.
  EXPECT_THAT(Combine({{1, 2}, {3, 6}}, 0, 10), ElementsAre(20, 40));
  // Four rows, one dropped at each end: the mean of the middle two.
  EXPECT_THAT(Combine({{1}, {2}, {4}, {100}}, 1), ElementsAre(3));
}

TEST(RobustMeanTest, OutliersAreFarFromTheMedianAgainstTheOthers) {
  const std::vector<float> median = {0, 0};
  const std::vector<float> a = {3, 4};     // distance 5
  const std::vector<float> b = {0, 1};     // 1
  const std::vector<float> c = {0, -2};    // 2 (the median distance of a, b, c)
  const std::vector<float> far = {0, 9};   // 9 > 4 x 2
  const std::vector<float> near = {0, 8};  // 8, not above 4 x 2
  auto row = [](const std::vector<float>& v, float factor = 1) { return ScaledRow{v.data(), factor}; };
  EXPECT_THAT(OutlierRows({row(a), row(b), row(c)}, median), ElementsAre());
  EXPECT_THAT(OutlierRows({row(far), row(b), row(c)}, median), ElementsAre(0));
  EXPECT_THAT(OutlierRows({row(b), row(c), row(near)}, median), ElementsAre());
  // A row stands for its values times its factor: {0, 4.5} x 2 is far.
  const std::vector<float> half = {0, 4.5f};
  EXPECT_THAT(OutlierRows({row(b), row(c), row(half, 2)}, median), ElementsAre(2));
  EXPECT_THAT(OutlierRows({row(b), row(c), row(half, 1)}, median), ElementsAre());
  // Fewer than three: nobody to judge by; a median distance of 0: none.
  EXPECT_THAT(OutlierRows({row(far), row(b)}, median), ElementsAre());
  EXPECT_THAT(OutlierRows({row(median), row(median), row(far)}, median), ElementsAre());
}

TEST(RobustMeanTest, TrimPerEndFollowsTheFlags) {
  const RobustMean median{RobustMean::Kind::kMedian, 0.1};
  EXPECT_EQ(TrimPerEnd(median, 1), 0u);
  EXPECT_EQ(TrimPerEnd(median, 2), 0u);
  EXPECT_EQ(TrimPerEnd(median, 3), 1u);
  EXPECT_EQ(TrimPerEnd(median, 4), 1u);  // mean of the middle two
  EXPECT_EQ(TrimPerEnd(median, 101), 50u);
  const RobustMean tenth{RobustMean::Kind::kTrimmedMean, 0.1};
  EXPECT_EQ(TrimPerEnd(tenth, 2), 0u);
  EXPECT_EQ(TrimPerEnd(tenth, 3), 1u);   // one liar among three is dropped
  EXPECT_EQ(TrimPerEnd(tenth, 10), 1u);
  EXPECT_EQ(TrimPerEnd(tenth, 11), 2u);
  EXPECT_EQ(TrimPerEnd(tenth, 100), 10u);
  EXPECT_EQ(TrimPerEnd(RobustMean{RobustMean::Kind::kTrimmedMean, 0.0}, 10), 0u);
  EXPECT_EQ(TrimPerEnd(RobustMean{RobustMean::Kind::kTrimmedMean, 0.45}, 10), 4u);
  EXPECT_EQ(TrimPerEnd(RobustMean{RobustMean::Kind::kNone, 0.3}, 10), 0u);
}

// Both ways of sorting (the network up to 32 rows, coordinate by coordinate
// beyond) against a reference in double, over sizes that are not a whole
// number of blocks.
TEST(RobustMeanTest, MatchesAReferenceForManyRowCounts) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const size_t n = 2500;
  for (size_t k : {1, 2, 3, 5, 8, 17, 32, 33, 50}) {
    std::vector<std::vector<float>> rows(k, std::vector<float>(n));
    for (auto& r : rows) {
      for (float& v : r) v = normal(rng);
    }
    rows[0][7] = rows[1 % k][7];  // a tie
    for (size_t trim : {size_t{0}, (k - 1) / 2, std::min<size_t>(2, (k - 1) / 2)}) {
      const std::vector<float> got = Combine(rows, trim, 3.0f);
      for (size_t i = 0; i < n; ++i) {
        std::vector<double> column;
        for (const auto& r : rows) column.push_back(r[i]);
        std::sort(column.begin(), column.end());
        double sum = 0;
        for (size_t j = trim; j + trim < k; ++j) sum += column[j];
        const double want = 3.0 * sum / static_cast<double>(k - 2 * trim);
        ASSERT_NEAR(got[i], want, 1e-5 * (1 + std::abs(want))) << "k=" << k << " i=" << i;
      }
    }
  }
}

TEST(RobustCombinerTest, LeavesOutliersOutAndCountsEachOfTheRestOnce) {
  RobustCombiner combiner(2, RobustMean{RobustMean::Kind::kMedian, 0.1});
  GradientAccumulator acc(2);
  // Means per sample {1, 1} and {2, -2}, and a liar with {1e30, 1e30}
  // claiming 1000 samples (a mean gradient scaled by its samples, as
  // workers send).
  ASSERT_TRUE(combiner.Add(std::vector<float>{1, 1}, 10, 10, 1.5, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{2, -2}, 30, 30, 2.5, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{1e30f, 1e30f}, 1000, 1000, 7.0, 1).ok());
  // The median {2, 1}; distances 1, 3 and ~1.4e30 > 4 x 3: the liar is out.
  EXPECT_THAT(combiner.CombineInto(&acc).outliers, ElementsAre(2));
  // The median of the two left is their mean {1.5, -0.5}, whatever their
  // samples, times the 40 samples kept.
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-4), std::vector<float>{60, -20}));
  EXPECT_EQ(acc.total_samples(), 40);
  EXPECT_DOUBLE_EQ(acc.loss_sum(), 4.0);
  EXPECT_EQ(acc.contributors(), 3);  // (every one is answered for)
  EXPECT_EQ(combiner.size(), 0u);

  // Nobody far out: the median of three as it is.
  ASSERT_TRUE(combiner.Add(std::vector<float>{1, 2}, 1, 1, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{3, 0}, 1, 1, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{2, 5}, 1, 1, 0.0, 1).ok());
  EXPECT_THAT(combiner.CombineInto(&acc).outliers, ElementsAre());
  EXPECT_THAT(acc.sum(), ElementsAre(6, 6));  // {2, 2} x 3 samples

  // A weighted sum (scale 1) is divided by its samples; nothing held leaves
  // the accumulator empty.
  ASSERT_TRUE(combiner.Add(std::vector<float>{40, 80}, 1, 4, 0.0, 2).ok());
  EXPECT_THAT(combiner.CombineInto(&acc).outliers, ElementsAre());
  EXPECT_THAT(acc.sum(), ElementsAre(40, 80));
  EXPECT_EQ(acc.contributors(), 2);
  EXPECT_THAT(combiner.CombineInto(&acc).outliers, ElementsAre());
  EXPECT_EQ(acc.contributors(), 0);
}

// Values whose buffer may be taken are kept as they arrived (the owner gets
// a spare back) and stand for values · scale / samples.
TEST(RobustCombinerTest, TakesAdoptableBuffersWithTheirFactor) {
  RobustCombiner combiner(2, RobustMean{RobustMean::Kind::kTrimmedMean, 0.1});
  GradientAccumulator acc(2);
  std::vector<float> first = {2, 4};
  const float* first_data = first.data();
  EncodedValues values(first);
  values.adoptable = &first;
  ASSERT_TRUE(combiner.Add(values, 3, 6, 0.0, 1).ok());  // {1, 2} per sample
  EXPECT_NE(first.data(), first_data);  // taken
  std::vector<float> second = {4, 0};
  EncodedValues more(second);
  more.adoptable = &second;
  ASSERT_TRUE(combiner.Add(more, 1, 2, 0.0, 1).ok());  // {2, 0}
  std::vector<float> inf = {1, std::numeric_limits<float>::infinity()};
  EncodedValues bad(inf);
  bad.adoptable = &inf;
  EXPECT_TRUE(IsNonFinite(combiner.Add(bad, 1, 1, 0.0, 1)));
  EXPECT_EQ(inf[1], std::numeric_limits<float>::infinity());  // not taken
  EXPECT_THAT(combiner.CombineInto(&acc).outliers, ElementsAre());
  // A round of 2: {1, 2} (norm sqrt(5)) is held to the norm 2 of {2, 0};
  // their mean times their 8 samples.
  const double held = 2 / std::sqrt(5.0);
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-5), std::vector<float>{
                                                        static_cast<float>(4 * (held + 2)),
                                                        static_cast<float>(4 * (2 * held))}));
}

// A round of only 2 has no majority: the larger is held to the smaller's
// norm, so whichever is the liar the round moves no further than the
// honest one alone, and never against it.
TEST(RobustCombinerTest, RoundOfTwoHoldsTheLargerToTheSmallersNorm) {
  RobustCombiner combiner(2, RobustMean{RobustMean::Kind::kTrimmedMean, 0.1});
  GradientAccumulator acc(2);
  const std::vector<float> honest = {3, 4};  // norm 5
  // Sign-flipped 100 times over: held to {-3, -4}; the round cancels out.
  ASSERT_TRUE(combiner.Add(honest, 1, 1, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{-300, -400}, 1, 1, 0.0, 1).ok());
  Combined combined = combiner.CombineInto(&acc);
  EXPECT_THAT(combined.outliers, ElementsAre());
  EXPECT_THAT(combined.held_down, ElementsAre(1));
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-5), std::vector<float>{0, 0}));
  EXPECT_EQ(acc.total_samples(), 2);

  // 1e30 on one coordinate, first: held to {5, 0}; ({3, 4} + {5, 0}) / 2
  // times 2 samples, still downhill for the honest gradient.
  ASSERT_TRUE(combiner.Add(std::vector<float>{1e30f, 0}, 1, 1, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(honest, 1, 1, 0.0, 1).ok());
  combined = combiner.CombineInto(&acc);
  EXPECT_THAT(combined.held_down, ElementsAre(0));
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-4), std::vector<float>{8, 4}));

  // A liar sending zeros holds the honest one to nothing (the honest one
  // is the one named: it is not a strike).
  ASSERT_TRUE(combiner.Add(honest, 1, 1, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{0, 0}, 1, 1, 0.0, 1).ok());
  EXPECT_THAT(combiner.CombineInto(&acc).held_down, ElementsAre(0));
  EXPECT_THAT(acc.sum(), ElementsAre(0, 0));

  // Two honest ones of similar norms (4.5 and 5, per sample): the larger
  // is held to 4.5, not named.
  ASSERT_TRUE(combiner.Add(std::vector<float>{9, 0}, 1, 2, 0.0, 1).ok());  // {4.5, 0}
  ASSERT_TRUE(combiner.Add(honest, 1, 1, 0.0, 1).ok());
  EXPECT_THAT(combiner.CombineInto(&acc).held_down, ElementsAre());
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-4), std::vector<float>{
                                                       static_cast<float>(3 * (4.5 + 2.7) / 2),
                                                       static_cast<float>(3 * 3.6 / 2)}));

  // A receiver's sum of squares of the values is read when it took one.
  std::vector<float> taken = {6, 8};
  EncodedValues values(taken);
  values.adoptable = &taken;
  values.squared_norm = 100;  // {6, 8} over 2 samples: norm 5 per sample
  ASSERT_TRUE(combiner.Add(values, 1, 2, 0.0, 1).ok());
  ASSERT_TRUE(combiner.Add(std::vector<float>{0, 10}, 1, 1, 0.0, 1).ok());
  EXPECT_THAT(combiner.CombineInto(&acc).held_down, ElementsAre());
  // {3, 4} and {0, 10} held to 5: ({3, 4} + {0, 5}) / 2 x 3 samples.
  EXPECT_THAT(acc.sum(), Pointwise(FloatNear(1e-4), std::vector<float>{4.5f, 13.5f}));
}

TEST(RobustCombinerTest, RefusesWhatCannotBeCombinedAndKeepsNothingOfIt) {
  RobustCombiner combiner(2, RobustMean{RobustMean::Kind::kTrimmedMean, 0.2});
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(combiner.Add(std::vector<float>{1, 2, 3}, 1, 1, 0, 1).ok());  // size
  EXPECT_FALSE(combiner.Add(std::vector<float>{1, 2}, 1, 0, 0, 1).ok());     // samples
  EXPECT_TRUE(IsNonFinite(combiner.Add(std::vector<float>{1, inf}, 1, 1, 0, 1)));
  EXPECT_TRUE(IsNonFinite(combiner.Add(std::vector<float>{1, 2}, 1, 1, inf, 1)));
  ASSERT_TRUE(combiner.Add(std::vector<float>{3.2e37f, 0}, 1, 1, 0, 1).ok());
  // 3.2e37 per sample over 11 samples would not be a float.
  EXPECT_TRUE(IsNonFinite(combiner.Add(std::vector<float>{1, 1}, 10, 10, 0, 1)));
  EXPECT_EQ(combiner.size(), 1u);
  GradientAccumulator acc(2);
  combiner.CombineInto(&acc);
  EXPECT_THAT(acc.sum(), ElementsAre(3.2e37f, 0));
  EXPECT_EQ(acc.total_samples(), 1);
}

TEST(RobustMeanTest, ParsesItsFlags) {
  EXPECT_EQ(*ParseRobust("none"), RobustMean::Kind::kNone);
  EXPECT_EQ(*ParseRobust("trimmed_mean"), RobustMean::Kind::kTrimmedMean);
  EXPECT_EQ(*ParseRobust("median"), RobustMean::Kind::kMedian);
  for (const char* bad : {"", "mean", "Median", "trimmed-mean", "median "}) {
    absl::StatusOr<RobustMean::Kind> parsed = ParseRobust(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(), ::testing::HasSubstr("--robust")) << bad;
  }
  EXPECT_EQ(RobustName(RobustMean::Kind::kTrimmedMean), "trimmed_mean");
  EXPECT_TRUE(ValidateTrimFraction(0).ok());
  EXPECT_TRUE(ValidateTrimFraction(0.49).ok());
  for (double bad : {-0.1, 0.5, 1.0, std::nan("")}) {
    EXPECT_FALSE(ValidateTrimFraction(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace hips
