#include "services/data/partition.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::HasSubstr;

// 10 classes x `each` examples, interleaved (label i % 10).
std::vector<int64_t> Labels(int each) {
  std::vector<int64_t> labels(10 * each);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i % 10);
  return labels;
}

// Disjoint, ascending, and covering all but `left_out` of n examples.
void ExpectDisjointCover(const std::vector<std::vector<int64_t>>& homes, size_t n,
                         size_t left_out = 0) {
  std::set<int64_t> seen;
  for (const auto& home : homes) {
    EXPECT_TRUE(std::is_sorted(home.begin(), home.end()));
    for (int64_t i : home) {
      EXPECT_TRUE(seen.insert(i).second) << i;
      EXPECT_LT(i, static_cast<int64_t>(n));
    }
  }
  EXPECT_EQ(seen.size(), n - left_out);
}

std::set<int64_t> ClassesOf(const std::vector<int64_t>& home, const std::vector<int64_t>& labels) {
  std::set<int64_t> out;
  for (int64_t i : home) out.insert(labels[i]);
  return out;
}

TEST(PartitionTest, IidIsWhatHipsAlwaysDid) {
  const std::vector<int64_t> labels = Labels(3);
  auto homes = PartitionExamples(labels, 4, Partition(), 7);
  ASSERT_TRUE(homes.ok());
  ASSERT_EQ(homes->size(), 4u);
  for (int h = 0; h < 4; ++h) {
    for (int64_t i : (*homes)[h]) EXPECT_EQ(i % 4, h);
  }
  ExpectDisjointCover(*homes, labels.size());
}

TEST(PartitionTest, ShardsGiveEachHomeItsShardsOfSortedLabels) {
  const std::vector<int64_t> labels = Labels(100);  // 1,000 examples
  const Partition p = *ParsePartition("shards", 0.5, 2);
  auto homes = PartitionExamples(labels, 10, p, 7);
  ASSERT_TRUE(homes.ok()) << homes.status();
  ExpectDisjointCover(*homes, labels.size());
  for (const auto& home : *homes) {
    EXPECT_EQ(home.size(), 100u);                 // 2 shards of 50
    EXPECT_LE(ClassesOf(home, labels).size(), 2u);  // a shard lies in one class
  }
  // 1,000 examples over 3 homes x 2 shards: shards of 166, 4 left out.
  auto three = PartitionExamples(labels, 3, p, 7);
  ASSERT_TRUE(three.ok());
  ExpectDisjointCover(*three, labels.size(), 4);
  EXPECT_THAT(PartitionExamples(labels, 600, p, 7).status().message(),
              HasSubstr("cannot be cut into 600 homes x 2 shards"));
}

TEST(PartitionTest, DirichletsAlphaSetsHowFewClassesAHomeHolds) {
  const std::vector<int64_t> labels = Labels(200);  // 2,000 examples
  auto mean_classes = [&](double alpha) {
    auto homes = PartitionExamples(labels, 10, *ParsePartition("dirichlet", alpha, 2), 3, 20);
    EXPECT_TRUE(homes.ok()) << homes.status();
    ExpectDisjointCover(*homes, labels.size());
    double major = 0;
    for (const auto& home : *homes) {
      std::vector<int64_t> counts(10, 0);
      for (int64_t i : home) ++counts[labels[i]];
      for (int64_t c : counts) major += 20 * c >= static_cast<int64_t>(home.size());
    }
    return major / 10;
  };
  const double skewed = mean_classes(0.1);
  const double even = mean_classes(100);
  EXPECT_LT(skewed, 5.0);
  EXPECT_EQ(even, 10.0);  // nearly iid: every class holds ~10% of every home
}

// Per home: every home the same size, disjoint, its classes as few as
// alpha says; 100 homes at alpha 0.1 over data that per-class dealing
// cannot split (some home gets nothing).
TEST(PartitionTest, DirichletPerHomeGivesEqualHomesSkewedByAlpha) {
  const std::vector<int64_t> labels = Labels(1000);  // 10,000 examples
  const Partition per_class = *ParsePartition("dirichlet", 0.1, 2);
  EXPECT_FALSE(PartitionExamples(labels, 100, per_class, 3, 32).ok());
  auto major_classes = [&](double alpha, int homes) {
    const Partition p = *ParsePartition("dirichlet", alpha, 2, "per_home");
    auto parts = PartitionExamples(labels, homes, p, 3, 10);
    EXPECT_TRUE(parts.ok()) << parts.status();
    ExpectDisjointCover(*parts, labels.size(), labels.size() % homes);
    std::vector<double> major;
    for (const auto& home : *parts) {
      EXPECT_EQ(home.size(), labels.size() / homes);
      std::vector<int64_t> counts(10, 0);
      for (int64_t i : home) ++counts[labels[i]];
      major.push_back(0);
      for (int64_t c : counts) major.back() += 20 * c >= static_cast<int64_t>(home.size());
    }
    std::sort(major.begin(), major.end());
    return major[major.size() / 2];  // the median home's
  };
  const double skewed = major_classes(0.1, 100);
  EXPECT_LE(skewed, 3.0);
  EXPECT_GT(major_classes(0.5, 100), skewed);
  EXPECT_EQ(major_classes(1000, 10), 10.0);  // nearly iid
  // 10,000 examples over 3 homes: 3,333 each, 1 left out.
  EXPECT_EQ(major_classes(0.5, 3) > 0, true);
  // Too many homes for a batch each: refused, saying what to change.
  auto crowded = PartitionExamples(labels, 2500, *ParsePartition("dirichlet", 0.5, 2, "per_home"),
                                   3, 10);
  EXPECT_THAT(crowded.status().message(), HasSubstr("give each of 2500 homes 4, fewer than 10"));
}

// A class that runs out is made up from the home's other classes: one
// class of 5 examples and one of 95, 10 homes of 10 each.
TEST(PartitionTest, DirichletPerHomeMakesUpForAClassThatRanOut) {
  std::vector<int64_t> labels(100, 1);
  for (int i = 0; i < 5; ++i) labels[i * 20] = 0;
  auto parts =
      PartitionExamples(labels, 10, *ParsePartition("dirichlet", 0.5, 2, "per_home"), 5, 1);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ExpectDisjointCover(*parts, labels.size());
  for (const auto& home : *parts) EXPECT_EQ(home.size(), 10u);
}

TEST(PartitionTest, TheSameSeedGivesTheSamePartsAndAnotherOtherParts) {
  const std::vector<int64_t> labels = Labels(50);
  for (const char* kind : {"dirichlet", "shards", "per_home"}) {
    const Partition p = std::string(kind) == "per_home"
                            ? *ParsePartition("dirichlet", 0.5, 2, "per_home")
                            : *ParsePartition(kind, 0.5, 2);
    auto a = PartitionExamples(labels, 5, p, 11);
    auto b = PartitionExamples(labels, 5, p, 11);
    auto c = PartitionExamples(labels, 5, p, 12);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << kind;
    EXPECT_EQ(*a, *b) << kind;
    EXPECT_NE(*a, *c) << kind;
  }
}

TEST(PartitionTest, TooSmallAnAlphaForTheHomesIsRefusedWithWhatToChange) {
  const std::vector<int64_t> labels = Labels(10);  // 100 examples
  auto homes = PartitionExamples(labels, 50, *ParsePartition("dirichlet", 0.01, 2), 1, 10);
  EXPECT_EQ(homes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(homes.status().message(), HasSubstr("fewer than 10 examples"));
}

TEST(PartitionTest, ParsesItsFlagsAndDescribesThem) {
  EXPECT_EQ(DescribePartition(*ParsePartition("iid", 0.5, 2)), "iid");
  EXPECT_EQ(DescribePartition(*ParsePartition("dirichlet", 0.1, 2)), "dirichlet(0.1)");
  EXPECT_EQ(DescribePartition(*ParsePartition("shards", 0.5, 3)), "shards(3)");
  EXPECT_THAT(ParsePartition("noniid", 0.5, 2).status().message(),
              HasSubstr("--partition must be iid, dirichlet or shards"));
  EXPECT_THAT(ParsePartition("dirichlet", 0, 2).status().message(),
              HasSubstr("--dirichlet_alpha must be in (0, 1000]"));
  EXPECT_FALSE(ParsePartition("dirichlet", -1, 2).ok());
  EXPECT_THAT(ParsePartition("shards", 0.5, 0).status().message(),
              HasSubstr("--shards_per_home must be in [1, 1000]"));
  EXPECT_EQ(DescribePartition(*ParsePartition("dirichlet", 0.1, 2, "per_home")),
            "dirichlet(0.1,per_home)");
  EXPECT_THAT(ParsePartition("dirichlet", 0.5, 2, "per_site").status().message(),
              HasSubstr("--dirichlet_draw must be per_class or per_home"));
}

TEST(PartitionTest, TheSpreadLineCountsExamplesAndMajorClasses) {
  const std::vector<int64_t> labels = {0, 0, 1, 1, 2, 2, 0, 1};
  const std::vector<std::vector<int64_t>> homes = {{0, 1}, {2, 3, 4, 5}, {6, 7}};
  EXPECT_EQ(DescribeLabelSpread(labels, homes),
            "3 homes: examples min/median/max 2/2/4, classes holding 5% or more of a home's "
            "examples min/median/max 1/2/2");
}

// What a worker calls: iid is shard index of homes without reading a label
// (any data, even none); the others are its part of the training labels.
TEST(PartitionTest, AHomesShardIsItsPartOfTheTrainingLabels) {
  DataOptions nowhere;
  nowhere.dir = "/nonexistent";
  absl::StatusOr<DataShard> iid = HomeShard(nowhere, Partition(), 2, 5, 7, 64);
  ASSERT_TRUE(iid.ok()) << iid.status();
  EXPECT_EQ(iid->index, 2);
  EXPECT_EQ(iid->count, 5);
  EXPECT_FALSE(iid->explicit_list());

  DataOptions synthetic;
  synthetic.name = "synthetic";
  synthetic.synthetic_train_examples = 2000;
  const Partition p = *ParsePartition("dirichlet", 0.5, 2);
  absl::StatusOr<std::vector<int64_t>> labels = LoadTrainingLabels(synthetic);
  ASSERT_TRUE(labels.ok()) << labels.status();
  auto parts = PartitionExamples(*labels, 4, p, 7, 16);
  ASSERT_TRUE(parts.ok()) << parts.status();
  for (int h = 0; h < 4; ++h) {
    absl::StatusOr<DataShard> shard = HomeShard(synthetic, p, h, 4, 7, 16);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ(shard->examples, (*parts)[h]) << h;
  }
  EXPECT_THAT(HomeShard(synthetic, p, 4, 4, 7, 16).status().message(),
              HasSubstr("homes 4 to 4 of 4 do not exist"));
  // No labels to split by: the error names the flag.
  absl::StatusOr<DataShard> missing = HomeShard(nowhere, p, 0, 4, 7, 16);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("--partition=dirichlet(0.5): "));
}

// The draws are SplitMix64 and hand-written samplers, not the standard
// library's distributions: the same parts with any compiler. Pinned here so
// that a change to them is seen (a run's data would move).
TEST(PartitionTest, TheDrawsArePinned) {
  const std::vector<int64_t> labels = Labels(100);
  auto homes = PartitionExamples(labels, 3, *ParsePartition("dirichlet", 0.5, 2), 1);
  ASSERT_TRUE(homes.ok());
  std::vector<size_t> sizes;
  for (const auto& home : *homes) sizes.push_back(home.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{164, 348, 488}));
  auto shards = PartitionExamples(labels, 3, *ParsePartition("shards", 0.5, 2), 1);
  ASSERT_TRUE(shards.ok());
  EXPECT_EQ((*shards)[0].front(), 7);
}

}  // namespace
}  // namespace hips
