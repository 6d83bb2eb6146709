#include "services/numeric/scaffold.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/numeric/fedavg.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::Pointwise;

// w[2] (parameter), bn[1] (buffer), b[1] (parameter).
ModelLayout Model() {
  return *ModelLayout::Create(
      {{"w", {2}, false}, {"bn.running_mean", {1}, true}, {"b", {1}, false}});
}

TEST(ScaffoldLayoutTest, EachParameterGetsAVariateServedAsABuffer) {
  absl::StatusOr<ModelLayout> served = WithControlVariates(Model());
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_EQ(served->tensors().size(), 5u);
  EXPECT_EQ(served->tensors()[3].name, "scaffold.c/w");
  EXPECT_EQ(served->tensors()[4].name, "scaffold.c/b");
  EXPECT_TRUE(served->tensors()[3].buffer);
  EXPECT_EQ(served->num_floats(), 4 + 3);
  // The variates are buffers: every tier keeps the mean value it receives.
  EXPECT_THAT(served->buffer_ranges(), ElementsAre(FloatRange{2, 1}, FloatRange{4, 3}));
  EXPECT_TRUE(HasControlVariates(*served, Model()));
  EXPECT_FALSE(HasControlVariates(Model(), Model()));
  EXPECT_EQ(ParameterFloats(Model()), 3);
  EXPECT_THAT(ParameterRanges(Model()), ElementsAre(FloatRange{0, 2}, FloatRange{3, 1}));

  // A checkpoint's layout back to the model's (what hips export writes).
  EXPECT_EQ(WithoutControlVariates(*served), Model());
  EXPECT_EQ(WithoutControlVariates(Model()), Model());

  // Twice, or a model of buffers only: refused.
  EXPECT_FALSE(WithControlVariates(*served).ok());
  EXPECT_FALSE(WithControlVariates(*ModelLayout::Create({{"bn", {3}, true}})).ok());
  // Another model's variates are not these.
  EXPECT_FALSE(
      HasControlVariates(*served, *ModelLayout::Create({{"w", {2}, false}, {"b", {1}, false}})));
}

// Two rounds of two local steps by hand: each gradient is corrected by
// c − c_i, c_i becomes the mean raw gradient of the round's steps, and
// the home pushes c + F·(c_i new − c_i old).
TEST(HomeVariateTest, CorrectsByCMinusCiAndPushesItsUpdateOfC) {
  HomeVariate h(Model());
  EXPECT_THAT(h.variate(), ElementsAre(0, 0, 0));
  h.Begin(std::vector<float>{1, 2, 3});
  std::vector<float> g = {10, 20, 7, 30};  // (7: the buffer's value)
  h.Correct(absl::MakeSpan(g));
  EXPECT_THAT(g, ElementsAre(11, 22, 7, 33));  // + c − 0
  g = {20, 40, 8, 50};
  h.Correct(absl::MakeSpan(g));
  EXPECT_THAT(g, ElementsAre(21, 42, 8, 53));
  std::vector<float> out(3);
  h.Finish(/*participation=*/1.0, absl::MakeSpan(out));
  EXPECT_THAT(h.variate(), ElementsAre(15, 30, 40));  // the mean of the raw ones
  EXPECT_THAT(out, ElementsAre(1 + 15, 2 + 30, 3 + 40));

  // Drawn with F = 1/4: a quarter of its change goes into c.
  h.Begin(std::vector<float>{5, 5, 5});
  g = {1, 1, 9, 3};
  h.Correct(absl::MakeSpan(g));
  EXPECT_THAT(g, ElementsAre(1 + 5 - 15, 1 + 5 - 30, 9, 3 + 5 - 40));
  h.Finish(0.25, absl::MakeSpan(out));
  EXPECT_THAT(h.variate(), ElementsAre(1, 1, 3));
  EXPECT_THAT(out, ElementsAre(5 + (1 - 15) / 4.0f, 5 + (1 - 30) / 4.0f, 5 + (3 - 40) / 4.0f));

  // A round without steps keeps c_i, and pushes c unchanged.
  h.Begin(std::vector<float>{2, 2, 2});
  h.Finish(1.0, absl::MakeSpan(out));
  EXPECT_THAT(h.variate(), ElementsAre(1, 1, 3));
  EXPECT_THAT(out, ElementsAre(2, 2, 2));
}

// With every home drawn (F = 1) and c the mean of their variates, the
// round's mean push is the mean of the new variates: c stays their mean.
TEST(HomeVariateTest, WithEveryHomeDrawnCStaysTheMeanVariate) {
  const ModelLayout model = *ModelLayout::Create({{"w", {2}, false}});
  HomeVariate a(model);
  HomeVariate b(model);
  std::vector<float> c = {0, 0};
  const std::vector<std::vector<std::vector<float>>> rounds = {
      {{1, 2}, {3, -4}}, {{0.5f, 0}, {-1, 6}}, {{2, 2}, {2, 2}}};
  for (const auto& grads : rounds) {
    a.Begin(c);
    b.Begin(c);
    std::vector<float> ga = grads[0];
    std::vector<float> gb = grads[1];
    a.Correct(absl::MakeSpan(ga));
    b.Correct(absl::MakeSpan(gb));
    std::vector<float> pa(2), pb(2);
    a.Finish(1.0, absl::MakeSpan(pa));
    b.Finish(1.0, absl::MakeSpan(pb));
    for (int k = 0; k < 2; ++k) c[k] = (pa[k] + pb[k]) / 2;
    for (int k = 0; k < 2; ++k) {
      EXPECT_FLOAT_EQ(c[k], (a.variate()[k] + b.variate()[k]) / 2) << k;
      EXPECT_FLOAT_EQ(c[k], (grads[0][k] + grads[1][k]) / 2) << k;
    }
  }
}

// SCAFFOLD's option II, c_i − c + (x − y)/(H·lr), equals the mean raw
// gradient for plain local SGD: checked over 3 corrected steps.
TEST(HomeVariateTest, TheMeanRawGradientIsOptionTwoForPlainSgd) {
  const ModelLayout model = *ModelLayout::Create({{"w", {3}, false}});
  HomeVariate h(model);
  const std::vector<float> c = {0.5f, -1, 2};
  // A first round gives c_i = (1, 2, 3).
  h.Begin(c);
  std::vector<float> g = {1, 2, 3};
  h.Correct(absl::MakeSpan(g));
  std::vector<float> pushed(3);
  h.Finish(1.0, absl::MakeSpan(pushed));
  const std::vector<float> ci(h.variate().begin(), h.variate().end());
  const std::vector<float> x = {1, 1, 1};
  LocalTrainer t(3, {});
  t.Begin(x);
  h.Begin(c);
  const LocalSgd sgd{0.1, 0, false, 0};
  const std::vector<std::vector<float>> raw = {{1, 0, 2}, {3, -2, 0}, {-1, 1, 1}};
  for (std::vector<float> step : raw) {
    h.Correct(absl::MakeSpan(step));
    t.Step(step, sgd);
  }
  std::vector<float> delta(3);
  t.DeltaInto(absl::MakeSpan(delta));
  std::vector<float> option2(3);
  for (int k = 0; k < 3; ++k) option2[k] = ci[k] - c[k] + delta[k] / (3 * 0.1f);
  h.Finish(1.0, absl::MakeSpan(pushed));
  const absl::Span<const float> out = h.variate();
  EXPECT_THAT(out, Pointwise(FloatEq(), std::vector<float>{1, -1.0f / 3, 1}));
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(out[k], option2[k], 1e-5) << k;
}

}  // namespace
}  // namespace hips
