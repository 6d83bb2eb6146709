// The model zoo behind the torch-free interface: layouts, gradients against
// finite differences, the optimizer against hand-computed SGD.

#include "services/models/model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/models/optimizer.h"

namespace hips {
namespace {

std::unique_ptr<Model> Make(const std::string& name, std::vector<int64_t> input = {1, 28, 28},
                            int layers = 16, int width = 256) {
  ModelOptions o;
  o.name = name;
  o.input_shape = std::move(input);
  o.fullmlp_layers = layers;
  o.fullmlp_width = width;
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(o, 3);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

TEST(ModelTest, LayoutsHaveTheDocumentedShapes) {
  // mlp 784-256-256-10.
  EXPECT_EQ(Make("mlp")->layout().num_floats(), 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(Make("mlp")->layout().DebugString(),
            "1.weight[256,784] 1.bias[256] 3.weight[256,256] 3.bias[256] 5.weight[10,256] "
            "5.bias[10]");
  // fullmlp: 16 Linear layers by default.
  EXPECT_EQ(Make("fullmlp")->layout().tensors().size(), 32u);
  EXPECT_EQ(Make("fullmlp", {8}, 3, 5)->layout().num_floats(), 8 * 5 + 5 + 5 * 5 + 5 + 5 * 10 + 10);
  // cnn: two conv blocks, 128-unit hidden layer.
  const ModelLayout cnn = Make("cnn")->layout();
  EXPECT_EQ(cnn.tensors().front().shape, (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(cnn.tensors()[4].shape, (std::vector<int64_t>{128, 64 * 7 * 7}));
}

TEST(ModelTest, SameSeedSameWeights) {
  std::unique_ptr<Model> a = Make("mlp"), b = Make("mlp");
  std::vector<float> wa(a->layout().num_floats()), wb(wa.size());
  a->GetWeights(absl::MakeSpan(wa));
  b->GetWeights(absl::MakeSpan(wb));
  EXPECT_EQ(wa, wb);
}

TEST(ModelTest, RefusesBadOptionsAndSizes) {
  ModelOptions o;
  o.name = "transformer";
  EXPECT_TRUE(absl::IsInvalidArgument(Model::Create(o, 1).status()));
  std::unique_ptr<Model> m = Make("fullmlp", {4}, 2, 3);
  std::vector<float> wrong(3);
  EXPECT_TRUE(absl::IsInvalidArgument(m->SetWeights(wrong)));
  std::vector<float> grad(m->layout().num_floats());
  const std::vector<int64_t> labels = {1};
  EXPECT_TRUE(
      absl::IsInvalidArgument(m->ComputeGradient(wrong, labels, absl::MakeSpan(grad)).status()));
}

// Central differences of the summed loss against the analytic gradient.
void CheckGradient(Model* m, const std::vector<float>& x, const std::vector<int64_t>& y) {
  const int64_t n = m->layout().num_floats();
  std::vector<float> w(n), grad(n), scratch(n);
  m->GetWeights(absl::MakeSpan(w));
  absl::StatusOr<double> loss = m->ComputeGradient(x, y, absl::MakeSpan(grad));
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_GT(*loss, 0);
  const double batch = static_cast<double>(y.size());
  for (int64_t i = 0; i < n; i += std::max<int64_t>(1, n / 23)) {
    const float saved = w[i];
    const float h = 1e-3f;
    w[i] = saved + h;
    ASSERT_TRUE(m->SetWeights(w).ok());
    const double up = *m->ComputeGradient(x, y, absl::MakeSpan(scratch));
    w[i] = saved - h;
    ASSERT_TRUE(m->SetWeights(w).ok());
    const double down = *m->ComputeGradient(x, y, absl::MakeSpan(scratch));
    w[i] = saved;
    const double numeric = (up - down) / (2 * h) / batch;  // of the mean loss
    EXPECT_NEAR(grad[i], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << "parameter " << i;
  }
  ASSERT_TRUE(m->SetWeights(w).ok());
}

TEST(ModelTest, GradientsMatchFiniteDifferences) {
  Dataset d = MakeSyntheticDataset(6, {1, 8, 8}, 10, 1, 2);
  CheckGradient(Make("fullmlp", {1, 8, 8}, 3, 16).get(), d.features, d.labels);
  CheckGradient(Make("cnn", {1, 8, 8}).get(), d.features, d.labels);
}

TEST(ModelTest, EvaluateCountsEveryExample) {
  Dataset d = MakeSyntheticDataset(2500, {1, 28, 28}, 10, 1, 2);
  absl::StatusOr<ClassificationMetrics> m = Make("mlp")->Evaluate(d);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->examples, 2500);
  EXPECT_GE(m->accuracy, 0.0);
  EXPECT_LE(m->accuracy, 1.0);
}

TEST(TorchOptimizerTest, SgdWithMomentumAndWeightDecayMatchesHandComputedSteps) {
  std::unique_ptr<Model> m = Make("fullmlp", {2}, 1, 1);  // one Linear(2, 10)
  const int64_t n = m->layout().num_floats();
  std::vector<float> w0(n);
  m->GetWeights(absl::MakeSpan(w0));
  OptimizerOptions o;
  o.learning_rate = 0.1;
  o.momentum = 0.5;
  o.weight_decay = 0.01;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = CreateTorchOptimizer(o, std::move(m));
  ASSERT_TRUE(opt.ok()) << opt.status();
  std::vector<float> g(n, 1.0f), w(n);
  // PyTorch SGD: d = g + wd·w; buf = d (first step), then buf = μ·buf + d;
  // w -= lr·buf. Two steps, the second at lr 0.05.
  ASSERT_TRUE((*opt)->Step(g, 0.1).ok());
  ASSERT_TRUE((*opt)->Step(g, 0.05).ok());
  (*opt)->GetWeights(absl::MakeSpan(w));
  for (int64_t i = 0; i < n; ++i) {
    const double d0 = 1.0 + 0.01 * w0[i];
    const double w1 = w0[i] - 0.1 * d0;
    const double d1 = 1.0 + 0.01 * w1;
    const double w2 = w1 - 0.05 * (0.5 * d0 + d1);
    EXPECT_NEAR(w[i], w2, 1e-6) << i;
  }
  EXPECT_TRUE(absl::IsInvalidArgument((*opt)->Step(std::vector<float>(n + 1), 0.1)));
}

TEST(TorchOptimizerTest, SetMomentumChangesTheNextStepsAndKeepsTheBuffer) {
  std::unique_ptr<Model> m = Make("fullmlp", {2}, 1, 1);
  const int64_t n = m->layout().num_floats();
  std::vector<float> w0(n), w(n);
  m->GetWeights(absl::MakeSpan(w0));
  OptimizerOptions o;
  o.learning_rate = 0.1;
  o.momentum = 0.9;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = CreateTorchOptimizer(o, std::move(m));
  ASSERT_TRUE(opt.ok()) << opt.status();
  std::vector<float> g(n, 1.0f);
  ASSERT_TRUE((*opt)->Step(g, 0.1).ok());  // buf = 1
  ASSERT_TRUE((*opt)->SetMomentum(0.5).ok());
  ASSERT_TRUE((*opt)->Step(g, 0.1).ok());  // buf = 0.5·1 + 1
  (*opt)->GetWeights(absl::MakeSpan(w));
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(w[i], w0[i] - 0.1 - 0.15, 1e-6) << i;
  EXPECT_TRUE(absl::IsInvalidArgument((*opt)->SetMomentum(1.0)));

  OptimizerOptions adam;
  adam.name = "adam";
  absl::StatusOr<std::unique_ptr<Optimizer>> a =
      CreateTorchOptimizer(adam, Make("fullmlp", {2}, 1, 1));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(absl::IsUnimplemented((*a)->SetMomentum(0.5)));
}

TEST(TorchOptimizerTest, AGradientWrittenIntoItsBufferStepsExactlyAsOneCopiedIn) {
  for (const char* name : {"sgd", "adam"}) {
    OptimizerOptions o;
    o.name = name;
    o.learning_rate = 0.05;
    o.momentum = 0.9;
    std::unique_ptr<Optimizer> copied = *CreateTorchOptimizer(o, Make("mlp", {1, 28, 28}));
    std::unique_ptr<Optimizer> in_place = *CreateTorchOptimizer(o, Make("mlp", {1, 28, 28}));
    const int64_t n = copied->num_floats();
    absl::Span<float> buffer = in_place->GradientBuffer();
    ASSERT_EQ(static_cast<int64_t>(buffer.size()), n);
    std::vector<float> g(n);
    for (int step = 0; step < 3; ++step) {
      for (int64_t i = 0; i < n; ++i) g[i] = std::sin(0.001f * static_cast<float>(i + step));
      std::copy(g.begin(), g.end(), buffer.begin());
      ASSERT_TRUE(copied->Step(g, 0.05).ok());
      ASSERT_TRUE(in_place->Step(buffer, 0.05).ok());
    }
    std::vector<float> a(n), b(n);
    copied->GetWeights(absl::MakeSpan(a));
    in_place->GetWeights(absl::MakeSpan(b));
    EXPECT_TRUE(a == b) << name;
    // The buffer stays the optimizer's gradient across steps: a step with a
    // copied-in gradient lands in it too.
    ASSERT_TRUE(in_place->Step(g, 0.05).ok());
    EXPECT_EQ(in_place->GradientBuffer().data(), buffer.data());
    EXPECT_TRUE(std::equal(g.begin(), g.end(), buffer.begin()));
  }
}

TEST(LearningRateScheduleTest, CosineDecaysToZeroOverTheBudget) {
  OptimizerOptions o;
  o.learning_rate = 0.2;
  o.lr_schedule = "cosine";
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 0, 100), 0.2);
  EXPECT_NEAR(ScheduledLearningRate(o, 50, 100), 0.1, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(o, 100, 100), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 50, 0), 0.2);  // no budget: constant
  o.lr_schedule = "constant";
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 50, 100), 0.2);
}

}  // namespace
}  // namespace hips
