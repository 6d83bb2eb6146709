#ifndef HIPS_SERVICES_NUMERIC_GRADIENT_ACCUMULATOR_H_
#define HIPS_SERVICES_NUMERIC_GRADIENT_ACCUMULATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "services/numeric/compression.h"
#include "services/types/float_pieces.h"

namespace hips {

// Sums flat gradients of one round: sum += scale · values, plus the sample,
// loss and contributor totals that travel with them. A worker's mean gradient
// g_i over n_i samples is added with scale n_i; an aggregator's already
// weighted sum with scale 1. The round's gradient is then sum / total_samples,
// which is the gradient of the mean loss over the union of the batches.
// Not thread-safe: the owner serializes access.
class GradientAccumulator {
 public:
  // Largest sample count of one contribution (keeps totals far from int64
  // overflow).
  static constexpr int64_t kMaxSamples = int64_t{1} << 31;

  explicit GradientAccumulator(size_t num_floats) : num_floats_(num_floats) {}

  // Zeroes every total; keeps the buffer (the next Add overwrites it).
  void Reset();

  // INVALID_ARGUMENT when `values` has the wrong size, `samples` is not in
  // (0, kMaxSamples], or the new sum or loss total would not be finite
  // (finite inputs can still overflow); nothing is added then. `values` may
  // be the pieces a stream arrived in: they are read in place. Encoded
  // values are summed as the dense floats they stand for. The first Add
  // after a Reset takes over values.adoptable when scale is 1.
  absl::Status Add(const EncodedValues& values, float scale, int64_t samples, double loss_sum,
                   int64_t contributors);

  absl::Span<const float> sum() const;
  // Moves the sum out (the accumulator is then Reset, with no buffer).
  std::vector<float> TakeSum();
  // A buffer of num_floats() floats for the next sum (after TakeSum), so
  // that it need not be allocated and zero-filled; ignored otherwise.
  void GiveBuffer(std::vector<float> buffer);
  // The buffer of the sum, as it is (empty if it has none), for a caller
  // that writes a whole sum itself; the accumulator is then Reset.
  std::vector<float> TakeBuffer();
  // Makes `sum` (num_floats() floats, each of magnitude at most `bound`)
  // the sum, with these totals, as if it had been added.
  void Assign(std::vector<float> sum, double bound, int64_t total_samples, double loss_sum,
              int64_t contributors);
  // An upper bound on the largest magnitude in the sum (0 when empty).
  double bound() const { return bound_; }
  int64_t total_samples() const { return total_samples_; }
  double loss_sum() const { return loss_sum_; }
  int64_t contributors() const { return contributors_; }
  size_t num_floats() const { return num_floats_; }

  // Writes sum / total_samples into `out` (same size). Precondition:
  // total_samples() > 0.
  void MeanInto(absl::Span<float> out) const;

 private:
  // Writes zeros if nothing was added since the last Reset.
  void Materialize() const;
  // `max_bits`: MaxAbsBits(values) if known, else kUnknownMaxBits.
  absl::Status AddDense(const FloatPieces& values, float scale, uint32_t max_bits);
  absl::Status AddSparse(const EncodedValues& values, float scale);
  // The first float32 contribution with scale 1 whose owner lets its buffer
  // be taken (EncodedValues::adoptable) becomes the sum without a copy.
  bool CanAdopt(const EncodedValues& values, float scale) const;
  absl::Status Adopt(const EncodedValues& values);

  size_t num_floats_;
  // Holds the sum only once something was added (`empty_` false): the first
  // Add after a Reset writes instead of adding, so no pass zeroes it.
  mutable std::vector<float> sum_;
  mutable bool empty_ = true;
  std::vector<float> decoded_;  // fp16 and bf16 inputs, decoded
  // An upper bound on max |sum_[i]| (decides whether an Add can overflow).
  double bound_ = 0;
  int64_t total_samples_ = 0;
  double loss_sum_ = 0.0;
  int64_t contributors_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_GRADIENT_ACCUMULATOR_H_
