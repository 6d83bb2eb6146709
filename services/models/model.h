#ifndef HIPS_SERVICES_MODELS_MODEL_H_
#define HIPS_SERVICES_MODELS_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/data/dataset.h"
#include "services/types/eval_metrics.h"
#include "services/types/model_layout.h"

namespace hips {

// Which network to build. Validated once by ValidateModelOptions.
struct ModelOptions {
  // "mlp" (784-256-256-10), "cnn" (two conv blocks, then 128-10), "fullmlp"
  // (`fullmlp_layers` Linear layers of width `fullmlp_width`) or
  // "torchscript" (the user's module in `model_file`, docs/models.md).
  std::string name = "mlp";
  // A module saved by torch.jit.script(m).save(PATH): its forward takes a
  // batch of inputs [n, input_shape...] and returns [n, num_classes] logits.
  std::string model_file;
  // "cross_entropy" (classes: logits [n, num_classes] against class labels)
  // or "mse" (regression: outputs [n, num_classes] against as many float
  // targets per example).
  std::string loss = "cross_entropy";
  int fullmlp_layers = 16;
  int fullmlp_width = 256;
  std::vector<int64_t> input_shape = {1, 28, 28};
  int64_t num_classes = 10;  // mse: targets per example
};

absl::Status ValidateModelOptions(const ModelOptions& options);

// A LibTorch network behind a torch-free interface, so that callers (worker,
// HQ, the monolith trainer) compile without LibTorch headers. Parameters are
// exposed as one flat float buffer in layout() order.
// Not thread-safe: one thread uses a Model at a time.
class Model {
 public:
  virtual ~Model() = default;

  // Builds the network with weights initialised from `seed` (the same seed
  // gives the same weights in every process). A TorchScript module comes
  // with the weights of its file (the seed does not change them); a file
  // that is missing, not a TorchScript module, or whose module does not map
  // a batch of the input shape to [n, num_classes] is INVALID_ARGUMENT
  // naming the file and what is wrong.
  static absl::StatusOr<std::unique_ptr<Model>> Create(const ModelOptions& options, uint64_t seed);

  virtual const ModelLayout& layout() const = 0;

  // Copies the flat weights out / in. Sizes must equal layout().num_floats().
  virtual void GetWeights(absl::Span<float> out) const = 0;
  virtual absl::Status SetWeights(absl::Span<const float> weights) = 0;

  // Forward and backward pass of the mean loss over a batch: cross-entropy
  // against `labels` (one per example), or with --loss=mse the mean over
  // examples of the squared error summed over each example's num_classes
  // `targets`. Writes the mean gradient to `grad_out` (and the buffers'
  // values to their slots) and returns the SUM of the per-example losses.
  virtual absl::StatusOr<double> ComputeGradient(absl::Span<const float> features,
                                                 absl::Span<const int64_t> labels,
                                                 absl::Span<const float> targets,
                                                 absl::Span<float> grad_out) = 0;
  // The random draws of the next ComputeGradient (dropout, and any other
  // randomness of the module) come from `seed`: the same seed, weights and
  // batch give the same gradient bit for bit, in this process or another.
  // Without it they come from LibTorch's generator as it stands.
  virtual void SeedNextGradient(uint64_t seed) { (void)seed; }
  // A classifier's.
  absl::StatusOr<double> ComputeGradient(absl::Span<const float> features,
                                         absl::Span<const int64_t> labels,
                                         absl::Span<float> grad_out) {
    return ComputeGradient(features, labels, {}, grad_out);
  }

  // Accuracy and macro-F1 (a regression: RMSE and R²) of the current
  // weights on `data`.
  virtual absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data) = 0;
};

// Writes the TorchScript module of `model_file` to `out` with the weights
// and buffers `weights` (in `layout` order, e.g. a checkpoint's), in eval
// mode: what `hips export` does. INVALID_ARGUMENT when the file is not a
// TorchScript module or its layout is not `layout` (naming the first tensor
// that differs); UNAVAILABLE when `out` cannot be written (nothing is left
// at `out` then).
absl::Status ExportTorchScript(const ModelLayout& layout, absl::Span<const float> weights,
                               const std::string& model_file, const std::string& out);

// The seed of `member`'s gradient of `step` in a run of `seed` (--seed):
// a restarted member recomputes the same draws, two members draw apart
// (splitmix64 over the seed, the step and an FNV-1a hash of the id).
uint64_t StepSeed(uint64_t seed, absl::string_view member, int64_t step);

// Sets LibTorch's intra-op thread count (a process-wide setting).
void SetTorchThreads(int threads);

}  // namespace hips

#endif  // HIPS_SERVICES_MODELS_MODEL_H_
