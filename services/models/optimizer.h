#ifndef HIPS_SERVICES_MODELS_OPTIMIZER_H_
#define HIPS_SERVICES_MODELS_OPTIMIZER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/models/model.h"

namespace hips {

struct OptimizerOptions {
  std::string name = "sgd";  // "sgd" (with momentum, weight decay) or "adam"
  double learning_rate = 0.05;
  double momentum = 0.9;       // sgd only
  bool nesterov = false;       // sgd only
  double weight_decay = 0.0;   // both
  double beta1 = 0.9;          // adam only
  double beta2 = 0.999;        // adam only
  double epsilon = 1e-8;       // adam only
  // "constant", or "cosine": learning_rate · ½(1 + cos(π·v / V)) at version v
  // of a V-version budget (constant when there is no budget).
  std::string lr_schedule = "cosine";
};

absl::Status ValidateOptimizerOptions(const OptimizerOptions& options);

// The learning rate of the step from version `version` to version+1 of a run
// whose budget is `max_versions` (0: no budget).
double ScheduledLearningRate(const OptimizerOptions& options, int64_t version,
                             int64_t max_versions);

// Owns a set of weights and the optimizer state for them.
// Not thread-safe: one thread steps it at a time.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update with the mean gradient `grad` (size = num_floats()) at
  // learning rate `learning_rate`.
  virtual absl::Status Step(absl::Span<const float> grad, double learning_rate) = 0;
  // SGD: the momentum of the following steps (the momentum buffer is kept).
  // UNIMPLEMENTED for optimizers without momentum.
  virtual absl::Status SetMomentum(double momentum) = 0;
  virtual void GetWeights(absl::Span<float> out) const = 0;
  virtual int64_t num_floats() const = 0;
};

// torch::optim (SGD or Adam) applied to the parameters of `model`, which it
// takes over.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateTorchOptimizer(const OptimizerOptions& options,
                                                                std::unique_ptr<Model> model);

}  // namespace hips

#endif  // HIPS_SERVICES_MODELS_OPTIMIZER_H_
