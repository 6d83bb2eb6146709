#include "services/numeric/buffer_pool.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(BufferPoolTest, HandsBackTheBuffersItKeptAndZeroFilledNewOnesOtherwise) {
  BufferPool pool(2);
  EXPECT_TRUE(pool.TakeIfKept(4).empty());
  EXPECT_EQ(pool.Take(4), std::vector<float>(4, 0.0f));

  std::vector<float> a(4, 1.0f), b(4, 2.0f), c(3, 3.0f);
  const float* a_data = a.data();
  pool.Give(std::move(a));
  pool.Give(std::move(b));
  pool.Give(std::move(c));  // the oldest (a) goes: two at most
  EXPECT_EQ(pool.kept(), 2u);
  EXPECT_TRUE(pool.TakeIfKept(5).empty());  // only exact sizes
  EXPECT_EQ(pool.TakeIfKept(3), std::vector<float>(3, 3.0f));
  std::vector<float> again = pool.Take(4);
  EXPECT_EQ(again, std::vector<float>(4, 2.0f));  // kept contents: the caller overwrites
  EXPECT_NE(again.data(), a_data);
  EXPECT_EQ(pool.kept(), 0u);
  pool.Give(std::vector<float>());  // nothing to keep
  EXPECT_EQ(pool.kept(), 0u);
}

TEST(BufferPoolTest, ARecycledSnapshotGivesItsWeightsBackWhenTheLastReferenceGoes) {
  while (!WeightsBuffers().TakeIfKept(7).empty()) {
  }
  std::shared_ptr<WeightsSnapshot> snapshot = NewRecycledSnapshot();
  snapshot->weights = WeightsBuffers().Take(7);
  const float* data = snapshot->weights.data();
  std::shared_ptr<const WeightsSnapshot> reader = snapshot;
  snapshot.reset();
  EXPECT_TRUE(WeightsBuffers().TakeIfKept(7).empty());  // still read
  reader.reset();
  std::vector<float> back = WeightsBuffers().TakeIfKept(7);
  EXPECT_EQ(back.data(), data);
}

}  // namespace
}  // namespace hips
