#ifndef HIPS_SERVICES_MODELS_OPTIMIZER_H_
#define HIPS_SERVICES_MODELS_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/models/model.h"
#include "services/types/sgd.h"

namespace hips {

struct OptimizerOptions {
  std::string name = "sgd";  // "sgd" (with momentum, weight decay) or "adam"
  double learning_rate = 0.05;
  double momentum = 0.9;      // sgd only
  bool nesterov = false;      // sgd only
  double weight_decay = 0.0;  // both
  double beta1 = 0.9;         // adam only
  double beta2 = 0.999;       // adam only
  double epsilon = 1e-8;      // adam only
  // "constant", or "cosine": learning_rate · ½(1 + cos(π·v / V)) at version v
  // of a V-version budget (constant when there is no budget).
  std::string lr_schedule = "cosine";
};

absl::Status ValidateOptimizerOptions(const OptimizerOptions& options);

// The learning rate of the step from version `version` to version+1 of a run
// whose budget is `max_versions` (0: no budget).
double ScheduledLearningRate(const OptimizerOptions& options, int64_t version,
                             int64_t max_versions);

// An optimizer's state apart from the weights, in a torch-free form that a
// checkpoint can hold and a fresh optimizer of the same kind can continue
// from bit for bit.
struct OptimizerState {
  std::string name;  // OptimizerOptions::name: "sgd" or "adam"
  // Per-parameter buffers, keyed "<tensor name>/<buffer>" with the tensor
  // names of the model's layout: "1.weight/momentum_buffer" (sgd),
  // "1.weight/exp_avg", "1.weight/exp_avg_sq", "1.weight/max_exp_avg_sq"
  // (adam). Flat float32 in the tensor's row-major shape. A buffer that does
  // not exist yet (no step taken) is absent.
  std::map<std::string, std::vector<float>> buffers;
  // Adam: the steps taken per tensor name (absent before the first step).
  std::map<std::string, int64_t> steps;

  friend bool operator==(const OptimizerState& a, const OptimizerState& b) {
    return a.name == b.name && a.buffers == b.buffers && a.steps == b.steps;
  }
  friend bool operator!=(const OptimizerState& a, const OptimizerState& b) { return !(a == b); }
};

// Owns a set of weights and the optimizer state for them.
// Not thread-safe: one thread steps it at a time.
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // One update with the mean gradient `grad` (size = num_floats()) at
  // learning rate `learning_rate`.
  virtual absl::Status Step(absl::Span<const float> grad, double learning_rate) = 0;
  // SGD: the momentum, Nesterov and weight decay of the following steps (the
  // momentum buffer is kept). INVALID_ARGUMENT for a momentum outside
  // [0, 1), a negative weight decay or Nesterov without momentum;
  // UNIMPLEMENTED for optimizers other than SGD.
  virtual absl::Status SetSgd(const SgdSettings& settings) = 0;
  virtual void GetWeights(absl::Span<float> out) const = 0;
  virtual int64_t num_floats() const = 0;

  // Where Step reads its gradient from: whoever computes the mean gradient
  // may write it here and pass this span to Step, which then copies nothing
  // (docs/performance.md, step 10). Empty if the optimizer has no such
  // buffer. Its contents are only meaningful until the next Step.
  virtual absl::Span<float> GradientBuffer() { return {}; }

  // Replaces the weights (size = num_floats()); the optimizer state is kept.
  // INVALID_ARGUMENT on a wrong size. UNIMPLEMENTED unless overridden, as are
  // ExportState and ImportState (optimizers that cannot be checkpointed).
  virtual absl::Status SetWeights(absl::Span<const float> weights) {
    return absl::UnimplementedError("this optimizer cannot set its weights");
  }
  // A copy of the optimizer state (not the weights).
  virtual absl::StatusOr<OptimizerState> ExportState() const {
    return absl::UnimplementedError("this optimizer cannot export its state");
  }
  // Replaces the whole optimizer state with `state` (exported by an optimizer
  // of the same kind over the same layout). INVALID_ARGUMENT, and nothing
  // changed, for another optimizer's name, an unknown tensor or buffer, or a
  // buffer of the wrong size.
  virtual absl::Status ImportState(const OptimizerState& state) {
    return absl::UnimplementedError("this optimizer cannot import a state");
  }
};

// torch::optim (SGD or Adam) applied to the parameters of `model`, which it
// takes over.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateTorchOptimizer(const OptimizerOptions& options,
                                                                std::unique_ptr<Model> model);

}  // namespace hips

#endif  // HIPS_SERVICES_MODELS_OPTIMIZER_H_
