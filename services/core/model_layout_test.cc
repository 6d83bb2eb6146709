#include "services/core/model_layout.h"

#include "gtest/gtest.h"

namespace hips {
namespace {

ModelLayout Layout(std::vector<TensorSpec> tensors) { return *ModelLayout::Create(tensors); }

TEST(ModelLayoutTest, OffsetsFollowTheTensorsInOrder) {
  const ModelLayout l = Layout({{"fc.weight", {3, 4}}, {"fc.bias", {3}}});
  EXPECT_EQ(l.num_floats(), 15);
  EXPECT_EQ(l.offset(0), 0);
  EXPECT_EQ(l.offset(1), 12);
  EXPECT_EQ(l.DebugString(), "fc.weight[3,4] fc.bias[3]");
}

TEST(ModelLayoutTest, RefusesEmptyDuplicateOrNonPositive) {
  EXPECT_FALSE(ModelLayout::Create({{"", {1}}}).ok());
  EXPECT_FALSE(ModelLayout::Create({{"a", {1}}, {"a", {2}}}).ok());
  EXPECT_FALSE(ModelLayout::Create({{"a", {0}}}).ok());
  EXPECT_FALSE(ModelLayout::Create({{"a", {-1, 2}}}).ok());
}

TEST(ModelLayoutTest, FirstDifferenceNamesTheFirstTensorThatDiffers) {
  const ModelLayout a = Layout({{"0.weight", {4, 8}}, {"0.bias", {4}}, {"2.weight", {2, 4}}});
  EXPECT_EQ(ModelLayout::FirstDifference(a, a), "");
  // Another shape, another name, a tensor fewer, a tensor more.
  EXPECT_EQ(ModelLayout::FirstDifference(
                a, Layout({{"0.weight", {4, 8}}, {"0.bias", {5}}, {"2.weight", {2, 5}}}), "at HQ",
                "in --model_file"),
            "tensor 1: '0.bias'[4] at HQ, '0.bias'[5] in --model_file");
  EXPECT_EQ(ModelLayout::FirstDifference(
                a, Layout({{"0.weight", {4, 8}}, {"0.b", {4}}, {"2.weight", {2, 4}}})),
            "tensor 1: '0.bias'[4] here, '0.b'[4] there");
  EXPECT_EQ(ModelLayout::FirstDifference(a, Layout({{"0.weight", {4, 8}}, {"0.bias", {4}}})),
            "tensor 2: '2.weight'[2,4] here, none there");
  EXPECT_EQ(ModelLayout::FirstDifference(Layout({{"0.weight", {4, 8}}}), a),
            "tensor 1: none here, '0.bias'[4] there");
}

}  // namespace
}  // namespace hips
