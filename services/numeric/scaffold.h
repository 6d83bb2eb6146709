#ifndef HIPS_SERVICES_NUMERIC_SCAFFOLD_H_
#define HIPS_SERVICES_NUMERIC_SCAFFOLD_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/types/model_layout.h"

namespace hips {

// SCAFFOLD's control variates (Karimireddy et al. 2020; fedavg with
// --fedavg_algorithm=scaffold, docs/modes.md). HQ keeps the server variate
// c beside the weights and serves both as one flat buffer of the layout
// WithControlVariates(model): the model's tensors, then one tensor
// "scaffold.c/<name>" of the same shape per parameter tensor, marked as a
// buffer. A buffer's value travels and every tier keeps the sample-weighted
// mean of the values it receives, so c needs no rule of its own anywhere
// between a home and HQ's step: each home pushes the value its update
// makes of c in those slots (Finish), and HQ's c becomes their mean.
//
// A home corrects each local gradient g by c − c_i and, after its H local
// steps, takes as its new c_i the mean of the raw gradients of those steps:
// SCAFFOLD's option II, (x − y)/(H·lr) + c_i − c, is that mean for plain SGD,
// and the mean is defined whatever the local momentum. What it pushes in
// the variate slots is c + F·Δc_i (F the participation), so that the mean
// the tiers keep is SCAFFOLD's c + (|S|/N)·mean Δc_i: the variates of the
// homes not drawn stay in c.

// The served layout under SCAFFOLD: INVALID_ARGUMENT for a model without
// parameters or one already holding variates.
absl::StatusOr<ModelLayout> WithControlVariates(const ModelLayout& model);
// Whether `served` is WithControlVariates(model).
bool HasControlVariates(const ModelLayout& served, const ModelLayout& model);
// The model's layout within `served`: `served` itself, or without the
// control variates WithControlVariates added (a checkpoint of a SCAFFOLD
// run holds them after the model's tensors; the model's floats come first).
ModelLayout WithoutControlVariates(const ModelLayout& served);
// The floats of the model's parameters (its floats less its buffers'):
// the size of c, and of each home's c_i.
int64_t ParameterFloats(const ModelLayout& model);
// The runs of a model's flat buffer that hold parameters, in order.
std::vector<FloatRange> ParameterRanges(const ModelLayout& model);

// One home's variate c_i (zeros until its first round) and a round's
// corrections. Not thread-safe.
class HomeVariate {
 public:
  explicit HomeVariate(const ModelLayout& model);

  // A round on the server's variate `c` (ParameterFloats long).
  void Begin(absl::Span<const float> c);
  // A local gradient (the model's size, as Model::ComputeGradient writes
  // it): notes its parameters' raw values, then adds c − c_i to them.
  // Buffers' slots are left alone.
  void Correct(absl::Span<float> grad);
  // Ends the round: c_i becomes the mean raw gradient of its steps (kept
  // as it was after a round of none), and `out` (ParameterFloats) gets
  // what the home pushes in the variate slots, c + F·(c_i new − c_i old)
  // with F the round's `participation`: the round's mean of those is
  // SCAFFOLD's server update c + (|S|/N)·mean Δc_i, |S|/N being F.
  void Finish(double participation, absl::Span<float> out);

  absl::Span<const float> variate() const { return c_i_; }

 private:
  const std::vector<FloatRange> params_;
  std::vector<float> c_i_;
  std::vector<float> c_;
  std::vector<double> sum_;
  int64_t steps_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_SCAFFOLD_H_
