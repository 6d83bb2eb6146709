#ifndef HIPS_SERVICES_NUMERIC_FEDAVG_H_
#define HIPS_SERVICES_NUMERIC_FEDAVG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/types/model_layout.h"
#include "services/types/sgd.h"

namespace hips {

// One worker's round of local SGD on a flat copy of the model: Begin with
// the round's weights, Step with each local gradient, then DeltaInto gives
// what the worker pushes. The momentum starts afresh every round (a FedAvg
// client keeps no optimizer state between rounds), so a round of one step
// pushes lr times the gradient (plus weight decay) whatever the momentum.
// Buffers (BatchNorm's running statistics) are not trained: a gradient's
// buffer slots carry their values after the forward pass, and so does the
// delta, so HQ averages them as it does in the other modes.
class LocalTrainer {
 public:
  // `buffers`: the layout's buffer ranges.
  LocalTrainer(size_t num_floats, std::vector<FloatRange> buffers);

  void Begin(absl::Span<const float> weights);
  // One step; `grad` as Model::ComputeGradient writes it. `proximal_mu`
  // (FedProx) adds mu·(w - w_round) to each parameter's gradient, before
  // weight decay and momentum; 0 leaves the step exactly plain SGD's.
  void Step(absl::Span<const float> grad, const LocalSgd& sgd, double proximal_mu = 0);
  // The weights after the steps so far (what the model computes on next).
  absl::Span<const float> weights() const { return weights_; }
  int64_t steps() const { return steps_; }
  // start - now for parameters (a "gradient" in the sense HQ's step
  // subtracts: w <- w - server_lr * mean delta), the newest values for
  // buffers.
  void DeltaInto(absl::Span<float> out) const;

 private:
  const std::vector<FloatRange> buffers_;
  std::vector<float> start_;
  std::vector<float> weights_;
  std::vector<float> momentum_;
  int64_t steps_ = 0;
};

// Edge rounds (HierFAVG), an aggregator's arithmetic. A round's workers
// push deltas d_i over n_i samples; the aggregator holds their sum
// Σ n_i·d_i over n = Σ n_i and moves its copy a of the model:
//   parameters  a <- a - Σ n_i·d_i / n   (the sample-weighted mean delta)
//   buffers     a <- Σ n_i·d_i / n       (a delta's buffer slots are values)
// Nothing moves when n is 0 (nobody pushed).
void ApplyEdgeRound(absl::Span<const float> round_sum, int64_t round_samples,
                    const std::vector<FloatRange>& buffers, absl::Span<float> copy);

// What goes to HQ after a version's last edge round: the copy's delta from
// the version's weights `start`, weighted by every sample of the version's
// edge rounds (`samples`), in the form of a round's sum (HQ divides by
// `samples`):
//   parameters  (start - copy)·samples
//   buffers     copy·samples
void EdgeAggregateInto(absl::Span<const float> start, absl::Span<const float> copy, int64_t samples,
                       const std::vector<FloatRange>& buffers, absl::Span<float> out);

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_FEDAVG_H_
