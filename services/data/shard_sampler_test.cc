#include "services/data/shard_sampler.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(ShardSamplerTest, ShardsAreDisjointAndComplete) {
  for (int64_t n : {1, 7, 100, 1001, 60000}) {
    for (int workers : {1, 2, 3, 4, 7}) {
      if (workers > n) continue;
      std::vector<int> seen(n, 0);
      for (int k = 0; k < workers; ++k) {
        absl::StatusOr<ShardSampler> s = ShardSampler::Create(n, k, workers, 1, 42);
        ASSERT_TRUE(s.ok()) << s.status();
        // One epoch of batch size 1 visits the whole shard.
        for (int64_t step = 0; step < s->steps_per_epoch(); ++step) {
          for (int64_t i : s->Batch(step)) {
            ASSERT_GE(i, 0);
            ASSERT_LT(i, n);
            EXPECT_EQ(i % workers, k);
            ++seen[i];
          }
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(seen[i], 1) << "example " << i << " with n=" << n << " workers=" << workers;
      }
    }
  }
}

TEST(ShardSamplerTest, EpochVisitsShardWithoutRepeatsAndDropsThePartialBatch) {
  absl::StatusOr<ShardSampler> s = ShardSampler::Create(103, 1, 2, 10, 3);  // shard of 51
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->shard_size(), 51);
  EXPECT_EQ(s->steps_per_epoch(), 5);
  std::set<int64_t> epoch;
  for (int64_t step = 0; step < 5; ++step) {
    std::vector<int64_t> b = s->Batch(step);
    EXPECT_EQ(b.size(), 10u);
    epoch.insert(b.begin(), b.end());
  }
  EXPECT_EQ(epoch.size(), 50u);
}

TEST(ShardSamplerTest, BatchIsAPureFunctionOfSeedShardAndStep) {
  absl::StatusOr<ShardSampler> a = ShardSampler::Create(1000, 2, 4, 16, 9);
  absl::StatusOr<ShardSampler> b = ShardSampler::Create(1000, 2, 4, 16, 9);
  ASSERT_TRUE(a.ok() && b.ok());
  // Out of order on one, in order on the other: same batches.
  const std::vector<int64_t> late = a->Batch(40);
  for (int64_t step = 0; step <= 40; ++step) b->Batch(step);
  EXPECT_EQ(b->Batch(40), late);
  EXPECT_EQ(a->Batch(3), b->Batch(3));
  // Another epoch is shuffled differently; another seed too.
  EXPECT_NE(a->Batch(0), a->Batch(a->steps_per_epoch()));
  absl::StatusOr<ShardSampler> c = ShardSampler::Create(1000, 2, 4, 16, 10);
  EXPECT_NE(c->Batch(0), a->Batch(0));
}

TEST(ShardSamplerTest, RefusesBadArguments) {
  EXPECT_FALSE(ShardSampler::Create(10, 2, 2, 1, 0).ok());
  EXPECT_FALSE(ShardSampler::Create(10, -1, 2, 1, 0).ok());
  EXPECT_FALSE(ShardSampler::Create(10, 0, 0, 1, 0).ok());
  EXPECT_FALSE(ShardSampler::Create(10, 0, 2, 6, 0).ok());
  EXPECT_FALSE(ShardSampler::Create(10, 0, 2, 0, 0).ok());
  EXPECT_FALSE(ShardSampler::FromExamples({1, 4}, 0, 3, 0).ok());  // a batch beyond the part
  EXPECT_FALSE(ShardSampler::FromExamples({}, 0, 1, 0).ok());
}

// A shard given as its examples draws as the same shard given by index:
// iid under --partition is what hips always did.
TEST(ShardSamplerTest, AShardGivenAsItsExamplesDrawsAsTheSameShardByIndex) {
  std::vector<int64_t> examples;
  for (int64_t i = 2; i < 1000; i += 4) examples.push_back(i);
  absl::StatusOr<ShardSampler> by_index = ShardSampler::Create(1000, 2, 4, 16, 9);
  absl::StatusOr<ShardSampler> listed = ShardSampler::FromExamples(examples, 2, 16, 9);
  ASSERT_TRUE(by_index.ok() && listed.ok());
  EXPECT_EQ(listed->shard_size(), 250);
  for (int64_t step : {0, 1, 15, 16, 47}) EXPECT_EQ(listed->Batch(step), by_index->Batch(step));
}

}  // namespace
}  // namespace hips
