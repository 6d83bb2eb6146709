#include "services/types/model_layout.h"

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

TEST(ModelLayoutTest, BuffersAreMarkedAndTheirRangesMerged) {
  const ModelLayout l = Layout({{"0.weight", {2, 3}},
                                {"1.running_mean", {2}, /*buffer=*/true},
                                {"1.running_var", {2}, /*buffer=*/true},
                                {"2.weight", {4}},
                                {"3.running_mean", {3}, /*buffer=*/true}});
  EXPECT_EQ(l.buffer_ranges(), (std::vector<FloatRange>{{6, 4}, {14, 3}}));
  EXPECT_EQ(l.DebugString(),
            "0.weight[2,3] 1.running_mean[2] (buffer) 1.running_var[2] (buffer) 2.weight[4] "
            "3.running_mean[3] (buffer)");
  EXPECT_TRUE(Layout({{"w", {3}}}).buffer_ranges().empty());
  // A parameter and a buffer of the same name and shape are different tensors.
  EXPECT_EQ(ModelLayout::FirstDifference(Layout({{"s", {3}}}), Layout({{"s", {3}, true}})),
            "tensor 0: 's'[3] here, 's'[3] (a buffer) there");
}

}  // namespace
}  // namespace hips
