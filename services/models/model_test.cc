// The model zoo behind the torch-free interface: layouts, gradients against
// finite differences, the optimizer against hand-computed SGD.

#include "services/models/model.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
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
  absl::StatusOr<EvalMetrics> m = Make("mlp")->Evaluate(d);
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

TEST(TorchOptimizerTest, SetSgdChangesTheNextStepsAndKeepsTheBuffer) {
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
  ASSERT_TRUE((*opt)->SetSgd({0.5, false, 0.0}).ok());
  ASSERT_TRUE((*opt)->Step(g, 0.1).ok());  // buf = 0.5·1 + 1
  (*opt)->GetWeights(absl::MakeSpan(w));
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(w[i], w0[i] - 0.1 - 0.15, 1e-6) << i;
  // Weight decay 1 adds the weights to the gradient: buf = 0.5·1.5 + (1 + w).
  std::vector<float> before = w;
  ASSERT_TRUE((*opt)->SetSgd({0.5, false, 1.0}).ok());
  ASSERT_TRUE((*opt)->Step(g, 0.1).ok());
  (*opt)->GetWeights(absl::MakeSpan(w));
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(w[i], before[i] - 0.1f * (0.75f + 1.0f + before[i]), 1e-5) << i;
  }
  EXPECT_TRUE(absl::IsInvalidArgument((*opt)->SetSgd({1.0, false, 0.0})));
  EXPECT_TRUE(absl::IsInvalidArgument((*opt)->SetSgd({0.5, false, -1.0})));
  EXPECT_TRUE(absl::IsInvalidArgument((*opt)->SetSgd({0.0, true, 0.0})));

  OptimizerOptions adam;
  adam.name = "adam";
  absl::StatusOr<std::unique_ptr<Optimizer>> a =
      CreateTorchOptimizer(adam, Make("fullmlp", {2}, 1, 1));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(absl::IsUnimplemented((*a)->SetSgd({0.5, false, 0.0})));
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

// --- The user's TorchScript modules (make_test_modules.py writes them). ---

absl::StatusOr<std::unique_ptr<Model>> Script(const std::string& file, std::vector<int64_t> input,
                                              int64_t classes) {
  ModelOptions o;
  o.name = "torchscript";
  o.model_file = absl::StrCat(HIPS_TEST_MODULES, "/", file);
  o.input_shape = std::move(input);
  o.num_classes = classes;
  return Model::Create(o, 1);
}

TEST(ScriptModelTest, AScriptedMlpIsTheZoosMlpTensorByTensor) {
  absl::StatusOr<std::unique_ptr<Model>> script = Script("mlp.pt", {1, 28, 28}, 10);
  ASSERT_TRUE(script.ok()) << script.status();
  std::unique_ptr<Model> zoo = Make("mlp");
  // The layout comes from the module's named parameters, in order.
  EXPECT_EQ((*script)->layout(), zoo->layout());
  // With the same weights, the same loss and gradient on the same batch.
  std::vector<float> w(zoo->layout().num_floats());
  zoo->GetWeights(absl::MakeSpan(w));
  ASSERT_TRUE((*script)->SetWeights(w).ok());
  std::vector<float> back(w.size());
  (*script)->GetWeights(absl::MakeSpan(back));
  EXPECT_EQ(back, w);
  const Dataset d = MakeSyntheticDataset(16, {1, 28, 28}, 10, 1, 2);
  std::vector<float> g_zoo(w.size()), g_script(w.size());
  absl::StatusOr<double> loss_zoo =
      zoo->ComputeGradient(d.features, d.labels, absl::MakeSpan(g_zoo));
  absl::StatusOr<double> loss_script =
      (*script)->ComputeGradient(d.features, d.labels, absl::MakeSpan(g_script));
  ASSERT_TRUE(loss_zoo.ok() && loss_script.ok());
  EXPECT_NEAR(*loss_script, *loss_zoo, 1e-5 * std::abs(*loss_zoo));
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::abs(g_script[i] - g_zoo[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::abs(g_zoo[i])));
  }
  EXPECT_GT(max_abs, 0);
  EXPECT_LE(max_diff, 1e-6 * max_abs);
  // A second batch: the gradients were zeroed in between, not summed.
  ASSERT_TRUE((*script)->ComputeGradient(d.features, d.labels, absl::MakeSpan(g_script)).ok());
  ASSERT_TRUE(zoo->ComputeGradient(d.features, d.labels, absl::MakeSpan(g_zoo)).ok());
  for (size_t i = 0; i < w.size(); i += 997) EXPECT_NEAR(g_script[i], g_zoo[i], 1e-6 * max_abs);
  // Evaluation agrees too.
  absl::StatusOr<EvalMetrics> m_zoo = zoo->Evaluate(d), m_script = (*script)->Evaluate(d);
  ASSERT_TRUE(m_zoo.ok() && m_script.ok());
  EXPECT_EQ(m_script->accuracy, m_zoo->accuracy);
}

TEST(ScriptModelTest, GradientsAreTakenInTrainModeAndEvaluationInEvalMode) {
  // train_switch.pt: logits in train mode; in eval mode a constant vote for
  // class 2 (and no gradient).
  absl::StatusOr<std::unique_ptr<Model>> m = Script("train_switch.pt", {4}, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  const Dataset d = MakeSyntheticDataset(60, {4}, 3, 1, 2);
  const int64_t twos = std::count(d.labels.begin(), d.labels.end(), 2);
  ASSERT_GT(twos, 0);
  ASSERT_LT(twos, 60);
  std::vector<float> g((*m)->layout().num_floats());
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE((*m)->ComputeGradient(d.features, d.labels, absl::MakeSpan(g)).ok());
    EXPECT_TRUE(std::any_of(g.begin(), g.end(), [](float v) { return v != 0; }));
    absl::StatusOr<EvalMetrics> metrics = (*m)->Evaluate(d);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    EXPECT_DOUBLE_EQ(metrics->accuracy, static_cast<double>(twos) / 60);
  }
}

// Dropout draws from (--seed, member, step) once seeded: the same seed gives
// the same gradient bit for bit (a restarted worker's), another seed other
// draws; two models in one process do not draw from each other's.
TEST(ScriptModelTest, DropoutIsDrawnFromTheStepsSeed) {
  absl::StatusOr<std::unique_ptr<Model>> a = Script("dropout.pt", {4}, 3);
  absl::StatusOr<std::unique_ptr<Model>> b = Script("dropout.pt", {4}, 3);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  const Dataset d = MakeSyntheticDataset(32, {4}, 3, 1, 2);
  const size_t n = static_cast<size_t>((*a)->layout().num_floats());
  auto gradient = [&](Model& m, std::optional<uint64_t> seed) {
    std::vector<float> g(n);
    if (seed.has_value()) m.SeedNextGradient(*seed);
    EXPECT_TRUE(m.ComputeGradient(d.features, d.labels, absl::MakeSpan(g)).ok());
    return g;
  };
  const uint64_t seed = StepSeed(1, "worker-2", 40);
  const std::vector<float> first = gradient(**a, seed);
  // Unseeded draws go on from the generator: another mask.
  EXPECT_NE(gradient(**a, std::nullopt), first);
  // The same step again, here or in another model (another process alike).
  EXPECT_EQ(gradient(**a, seed), first);
  EXPECT_EQ(gradient(**b, seed), first);
  EXPECT_NE(gradient(**b, StepSeed(1, "worker-2", 41)), first);
  EXPECT_NE(gradient(**b, StepSeed(1, "worker-3", 40)), first);
  EXPECT_NE(gradient(**b, StepSeed(2, "worker-2", 40)), first);
}

TEST(StepSeedTest, IsStableAndDrawsApartByRunMemberAndStep) {
  // Values fixed across builds and machines (a restarted member on another
  // machine must draw as its predecessor), computed independently in Python
  // from the definition (splitmix64, FNV-1a).
  EXPECT_EQ(StepSeed(1, "worker-0", 0), 0x56a09965874dba83ull);
  EXPECT_EQ(StepSeed(7, "agg", 123456), 0x12158b5631e1bcccull);
  std::set<uint64_t> seen;
  for (uint64_t run : {1, 2}) {
    for (const char* member : {"worker-0", "worker-1", "w0"}) {
      for (int64_t step : {0, 1, 1000}) seen.insert(StepSeed(run, member, step));
    }
  }
  EXPECT_EQ(seen.size(), 18u);
}

TEST(ScriptModelTest, AFrozenParameterIsInTheLayoutWithAZeroGradient) {
  absl::StatusOr<std::unique_ptr<Model>> m = Script("frozen.pt", {4}, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->layout().DebugString(), "a.weight[4,4] a.bias[4] b.weight[3,4] b.bias[3]");
  const Dataset d = MakeSyntheticDataset(8, {4}, 3, 1, 2);
  std::vector<float> g((*m)->layout().num_floats(), 7.0f);
  ASSERT_TRUE((*m)->ComputeGradient(d.features, d.labels, absl::MakeSpan(g)).ok());
  EXPECT_TRUE(std::all_of(g.begin(), g.begin() + 16, [](float v) { return v == 0; }));
  EXPECT_TRUE(std::any_of(g.begin() + 16, g.end(), [](float v) { return v != 0; }));
}

TEST(ScriptModelTest, ABadFileIsRefusedNamingItAndWhatIsWrong) {
  const auto refused = [](const std::string& file, std::vector<int64_t> input, int64_t classes) {
    absl::StatusOr<std::unique_ptr<Model>> m = Script(file, std::move(input), classes);
    EXPECT_FALSE(m.ok()) << file;
    return m.status();
  };
  absl::Status s = refused("no_such_file.pt", {4}, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("no_such_file.pt: not a TorchScript module"));
  s = refused("not_a_module.pt", {4}, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("not_a_module.pt: not a TorchScript module"));
  // Five logits where the data has three classes.
  s = refused("wrong_output.pt", {4}, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("of shape [1, 5]; hips needs float logits of "
                                                "shape [1, 3]"));
  // An input its forward cannot take.
  s = refused("wrong_output.pt", {7}, 5);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("batch of shape [1, 7] to an error"));
  // The options themselves.
  ModelOptions o;
  o.name = "torchscript";
  EXPECT_THAT(Model::Create(o, 1).status().message(), ::testing::HasSubstr("--model_file"));
  o.name = "mlp";
  o.model_file = "mlp.pt";
  EXPECT_THAT(Model::Create(o, 1).status().message(),
              ::testing::HasSubstr("--model_file is for --model=torchscript"));
}

// batchnorm.pt: Flatten, Linear(4, 3), BatchNorm1d(3).
TEST(ScriptModelTest, BuffersTravelAsValuesAndTheOptimizerSetsThem) {
  absl::StatusOr<std::unique_ptr<Model>> m = Script("batchnorm.pt", {4}, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  // The float buffers follow the parameters; the integer batch counter is
  // not in the layout.
  EXPECT_EQ((*m)->layout().DebugString(),
            "1.weight[3,4] 1.bias[3] 2.weight[3] 2.bias[3] 2.running_mean[3] (buffer) "
            "2.running_var[3] (buffer)");
  EXPECT_EQ((*m)->layout().buffer_ranges(), (std::vector<FloatRange>{{21, 6}}));
  const int64_t n = (*m)->layout().num_floats();
  std::vector<float> w(n);
  (*m)->GetWeights(absl::MakeSpan(w));
  // A fresh BatchNorm: mean 0, variance 1.
  EXPECT_EQ(std::vector<float>(w.begin() + 21, w.end()), (std::vector<float>{0, 0, 0, 1, 1, 1}));

  // One batch in train mode moves the running statistics by momentum 0.1
  // towards the batch's (unbiased variance), and their slots carry them.
  const Dataset d = MakeSyntheticDataset(8, {4}, 3, 1, 2);
  std::vector<float> g(n);
  ASSERT_TRUE((*m)->ComputeGradient(d.features, d.labels, absl::MakeSpan(g)).ok());
  for (int j = 0; j < 3; ++j) {
    std::vector<double> h(8);
    for (int e = 0; e < 8; ++e) {
      h[e] = w[12 + j];  // 1.bias
      for (int k = 0; k < 4; ++k) h[e] += double{w[4 * j + k]} * d.features[4 * e + k];
    }
    double mean = 0, var = 0;
    for (double v : h) mean += v / 8;
    for (double v : h) var += (v - mean) * (v - mean) / 7;
    EXPECT_NEAR(g[21 + j], 0.1 * mean, 1e-5) << j;
    EXPECT_NEAR(g[24 + j], 0.9 + 0.1 * var, 1e-5) << j;
  }
  // Evaluation uses the running statistics: skewed ones change the votes.
  absl::StatusOr<EvalMetrics> before = (*m)->Evaluate(d);
  std::vector<float> skewed = w;
  skewed[21] = 100;
  skewed[22] = -100;
  ASSERT_TRUE((*m)->SetWeights(skewed).ok());
  absl::StatusOr<EvalMetrics> after = (*m)->Evaluate(d);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(after->accuracy,
            static_cast<double>(std::count(d.labels.begin(), d.labels.end(), 1)) / 8);

  // The optimizer steps the parameters and sets the buffers to their slots.
  OptimizerOptions o;
  o.name = "sgd";
  o.momentum = 0;
  o.weight_decay = 0.5;  // decays parameters only
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = CreateTorchOptimizer(o, *std::move(m));
  ASSERT_TRUE(opt.ok()) << opt.status();
  ASSERT_TRUE((*opt)->SetWeights(w).ok());
  ASSERT_TRUE((*opt)->Step(g, 0.5).ok());
  std::vector<float> stepped(n);
  (*opt)->GetWeights(absl::MakeSpan(stepped));
  for (int64_t i = 0; i < 21; ++i) {
    EXPECT_FLOAT_EQ(stepped[i], w[i] - 0.5f * (g[i] + 0.5f * w[i])) << i;
  }
  for (int64_t i = 21; i < n; ++i) EXPECT_EQ(stepped[i], g[i]) << i;
}

// wrong_output.pt is Flatten then Linear(4, 5): as a regression on 5
// targets, the mean over examples of the summed squared error.
TEST(ScriptModelTest, MseLossAndItsGradientAgainstHandComputedValues) {
  ModelOptions o;
  o.name = "torchscript";
  o.loss = "mse";
  o.model_file = absl::StrCat(HIPS_TEST_MODULES, "/wrong_output.pt");
  o.input_shape = {4};
  o.num_classes = 5;
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(o, 1);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<float> w((*m)->layout().num_floats());  // 5x4 weight, then 5 biases
  (*m)->GetWeights(absl::MakeSpan(w));
  const std::vector<float> x = {1, 2, 3, 4, -1, 0, 1, 0.5f};
  std::vector<float> t(10);
  for (int i = 0; i < 10; ++i) t[i] = 0.1f * static_cast<float>(i);
  std::vector<float> g(w.size());
  absl::StatusOr<double> loss = (*m)->ComputeGradient(x, {}, t, absl::MakeSpan(g));
  ASSERT_TRUE(loss.ok()) << loss.status();
  double sum = 0;
  std::vector<double> bias_grad(5, 0);
  for (int e = 0; e < 2; ++e) {
    for (int j = 0; j < 5; ++j) {
      double out = w[20 + j];
      for (int k = 0; k < 4; ++k) out += double{w[4 * j + k]} * x[4 * e + k];
      const double err = out - t[5 * e + j];
      sum += err * err;
      bias_grad[j] += 2 * err / 2;  // d(mean over the 2 examples)/d bias
    }
  }
  EXPECT_NEAR(*loss, sum, 1e-4 * sum);  // the SUM of the per-example losses
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(g[20 + j], bias_grad[j], 1e-5) << j;

  // Evaluation reports RMSE and R².
  Dataset d;
  d.example_shape = {4};
  d.features = x;
  d.targets = t;
  d.target_size = 5;
  d.num_classes = 5;
  absl::StatusOr<EvalMetrics> metrics = (*m)->Evaluate(d);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_TRUE(metrics->regression);
  EXPECT_NEAR(metrics->rmse, std::sqrt(sum / 10), 1e-5);
  // A classifier's options do not fit 5 outputs per example of 3 classes.
  o.loss = "cross_entropy";
  o.num_classes = 3;
  EXPECT_FALSE(Model::Create(o, 1).ok());
  o.loss = "l1";
  EXPECT_THAT(Model::Create(o, 1).status().message(), ::testing::HasSubstr("unknown loss 'l1'"));
}

TEST(ScriptModelTest, TheOptimizerStepsAScriptedModel) {
  absl::StatusOr<std::unique_ptr<Model>> m = Script("frozen.pt", {4}, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  const int64_t n = (*m)->layout().num_floats();
  std::vector<float> w(n);
  (*m)->GetWeights(absl::MakeSpan(w));
  OptimizerOptions o;
  o.name = "sgd";
  o.momentum = 0;
  absl::StatusOr<std::unique_ptr<Optimizer>> opt = CreateTorchOptimizer(o, *std::move(m));
  ASSERT_TRUE(opt.ok()) << opt.status();
  std::vector<float> grad(n);
  for (int64_t i = 0; i < n; ++i) grad[i] = 0.01f * static_cast<float>(i % 7);
  ASSERT_TRUE((*opt)->Step(grad, 0.5).ok());
  std::vector<float> after(n);
  (*opt)->GetWeights(absl::MakeSpan(after));
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(after[i], w[i] - 0.5f * grad[i]) << i;
}

}  // namespace
}  // namespace hips
