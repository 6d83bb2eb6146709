#include "services/runtime/training_flags.h"

#include "absl/flags/flag.h"
#include "services/runtime/process_setup.h"

ABSL_FLAG(std::string, model, "mlp",
          "Model: mlp (784-256-256-10), cnn, fullmlp, or torchscript (with --model_file).");
ABSL_FLAG(std::string, model_file, "",
          "--model=torchscript: a module saved by torch.jit.script(m).save(PATH); its forward "
          "maps a batch of inputs to [n, classes] logits (docs/models.md).");
ABSL_FLAG(std::string, loss, "cross_entropy",
          "cross_entropy (classes: accuracy and macro-F1) or mse (regression on float32 targets "
          "of --data=npz: RMSE and R²).");
ABSL_FLAG(int, fullmlp_layers, 16, "Linear layers of the fullmlp model.");
ABSL_FLAG(int, fullmlp_width, 256, "Width of the fullmlp model's hidden layers.");
ABSL_FLAG(std::string, optimizer, "sgd", "Optimizer at HQ: sgd or adam.");
ABSL_FLAG(double, lr, 0.05, "Learning rate.");
ABSL_FLAG(double, momentum, 0.9, "SGD momentum.");
ABSL_FLAG(std::string, lr_schedule, "cosine",
          "Learning-rate schedule over the version budget: cosine or constant.");
ABSL_FLAG(bool, nesterov, false, "Nesterov momentum (sgd).");
ABSL_FLAG(double, weight_decay, 0.0, "L2 weight decay.");
ABSL_FLAG(std::string, data, "fashion-mnist",
          "Data set: fashion-mnist, synthetic, or npz (with --train_data and --test_data).");
ABSL_FLAG(std::string, data_dir, hips::kDefaultFashionMnistDir,
          "Directory with Fashion-MNIST's gzipped IDX files.");
ABSL_FLAG(std::string, train_data, "",
          "--data=npz: the training split, a numpy.savez file with x (float32 [N, ...]) and y "
          "(int64 [N] class labels); each worker keeps only its shard in memory.");
ABSL_FLAG(std::string, test_data, "",
          "--data=npz: the test split HQ evaluates on, as --train_data.");
ABSL_FLAG(int64_t, synthetic_examples, 8192, "Training examples of the synthetic data set.");
ABSL_FLAG(int64_t, synthetic_test_examples, 2048, "Test examples of the synthetic data set.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the initial weights and of the data order.");
ABSL_FLAG(int, torch_threads, 1, "LibTorch intra-op threads per process.");

namespace hips {

ModelOptions ModelOptionsFromFlags() {
  ModelOptions o;
  o.name = absl::GetFlag(FLAGS_model);
  o.model_file = absl::GetFlag(FLAGS_model_file);
  o.loss = absl::GetFlag(FLAGS_loss);
  o.fullmlp_layers = absl::GetFlag(FLAGS_fullmlp_layers);
  o.fullmlp_width = absl::GetFlag(FLAGS_fullmlp_width);
  return o;
}

OptimizerOptions OptimizerOptionsFromFlags() {
  OptimizerOptions o;
  o.name = absl::GetFlag(FLAGS_optimizer);
  o.learning_rate = absl::GetFlag(FLAGS_lr);
  o.momentum = absl::GetFlag(FLAGS_momentum);
  o.nesterov = absl::GetFlag(FLAGS_nesterov);
  o.lr_schedule = absl::GetFlag(FLAGS_lr_schedule);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  return o;
}

DataOptions DataOptionsFromFlags() {
  DataOptions o;
  o.name = absl::GetFlag(FLAGS_data);
  o.dir = absl::GetFlag(FLAGS_data_dir);
  o.train_path = absl::GetFlag(FLAGS_train_data);
  o.test_path = absl::GetFlag(FLAGS_test_data);
  o.loss = absl::GetFlag(FLAGS_loss);
  o.synthetic_train_examples = absl::GetFlag(FLAGS_synthetic_examples);
  o.synthetic_test_examples = absl::GetFlag(FLAGS_synthetic_test_examples);
  return o;
}

DataOptions DataOptionsFromFlagsOrExit() {
  DataOptions o = DataOptionsFromFlags();
  if (absl::Status s = CheckDataOptions(o, /*inspect_files=*/!CheckingFlagsOnly()); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  return o;
}

}  // namespace hips
