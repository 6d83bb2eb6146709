// Option checks and the learning-rate schedule: torch-free, so that the
// parameter server's logic and its tests do not need LibTorch.

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/data/shard_sampler.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"

namespace hips {

uint64_t StepSeed(uint64_t seed, absl::string_view member, int64_t step) {
  uint64_t id = 0xcbf29ce484222325ull;  // FNV-1a, stable across builds
  for (unsigned char c : member) id = (id ^ c) * 0x100000001b3ull;
  return SplitMix64(SplitMix64(SplitMix64(seed) ^ id) ^ static_cast<uint64_t>(step));
}

absl::Status ValidateModelOptions(const ModelOptions& o) {
  if (o.name != "mlp" && o.name != "cnn" && o.name != "fullmlp" && o.name != "torchscript") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown model '", o.name, "' (expected mlp, cnn, fullmlp or torchscript)"));
  }
  if (o.name == "torchscript" && o.model_file.empty()) {
    return absl::InvalidArgumentError("--model=torchscript needs --model_file=PATH");
  }
  if (o.name != "torchscript" && !o.model_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_file is for --model=torchscript, not '", o.name, "'"));
  }
  if (o.loss != "cross_entropy" && o.loss != "mse") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown loss '", o.loss, "' (expected cross_entropy or mse)"));
  }
  if (o.input_shape.empty() || o.num_classes < (o.loss == "mse" ? 1 : 2)) {
    return absl::InvalidArgumentError(o.loss == "mse"
                                          ? "a model needs an input shape and at least 1 target"
                                          : "a model needs an input shape and at least 2 classes");
  }
  for (int64_t d : o.input_shape) {
    if (d <= 0) return absl::InvalidArgumentError("input dimensions must be positive");
  }
  if (o.name == "cnn" &&
      (o.input_shape.size() != 3 || o.input_shape[1] < 4 || o.input_shape[2] < 4)) {
    return absl::InvalidArgumentError("cnn needs inputs of shape {channels, height>=4, width>=4}");
  }
  if (o.name == "fullmlp" && (o.fullmlp_layers < 1 || o.fullmlp_width < 1)) {
    return absl::InvalidArgumentError("fullmlp needs at least 1 layer of width at least 1");
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizerOptions(const OptimizerOptions& o) {
  if (o.name != "sgd" && o.name != "adam") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown optimizer '", o.name, "' (expected sgd or adam)"));
  }
  if (!(o.learning_rate > 0) || !(o.momentum >= 0 && o.momentum < 1) || !(o.weight_decay >= 0) ||
      !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.epsilon > 0)) {
    return absl::InvalidArgumentError(
        "optimizer needs lr > 0, momentum/beta in [0, 1), weight decay >= 0, epsilon > 0");
  }
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown lr schedule '", o.lr_schedule, "' (expected constant or cosine)"));
  }
  if (o.nesterov && o.momentum == 0) {
    return absl::InvalidArgumentError("nesterov needs a momentum above 0");
  }
  return absl::OkStatus();
}

double ScheduledLearningRate(const OptimizerOptions& o, int64_t version, int64_t max_versions) {
  if (o.lr_schedule != "cosine" || max_versions <= 0) return o.learning_rate;
  const double progress = std::min(1.0, static_cast<double>(version) / max_versions);
  return o.learning_rate * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace hips
