#include "services/core/gradient_accumulator.h"

#include <cstring>
#include <limits>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/core/chunk_codec.h"

namespace hips {

void GradientAccumulator::Reset() {
  std::fill(sum_.begin(), sum_.end(), 0.0f);
  bound_ = 0;
  total_samples_ = 0;
  loss_sum_ = 0.0;
  contributors_ = 0;
}

absl::Status GradientAccumulator::Add(absl::Span<const float> values, float scale,
                                      int64_t samples, double loss_sum,
                                      int64_t contributors) {
  if (values.size() != sum_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("gradient has ", values.size(),
                                                   " floats, the model has ", sum_.size()));
  }
  if (samples <= 0 || samples > kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum_ + loss_sum)) {
    return absl::InvalidArgumentError("loss total would not be finite");
  }
  float* __restrict out = sum_.data();
  const float* __restrict in = values.data();
  const size_t n = sum_.size();
  // One read of the input for finiteness and its largest magnitude. With
  // bound_ >= max |sum|, |sum + scale·in| <= bound_ + scale·max|in|: when that
  // is safely below FLT_MAX nothing can overflow, and the sum is updated in
  // one fused pass (the common case, about memory speed).
  const uint32_t max_bits = MaxAbsBits(values);
  if (max_bits >= kNonFiniteBits) return CheckFinite(values);
  float max_in;
  std::memcpy(&max_in, &max_bits, sizeof(max_in));
  const double bound = bound_ + static_cast<double>(scale) * static_cast<double>(max_in);
  if (bound * (1 + 1e-6) < static_cast<double>(std::numeric_limits<float>::max())) {
    for (size_t i = 0; i < n; ++i) out[i] += scale * in[i];
    bound_ = bound;
  } else {
    // Near the float range: check first, so a refused contribution leaves
    // the sum untouched.
    bool finite = true;
    for (size_t i = 0; i < n; ++i) finite &= std::isfinite(out[i] + scale * in[i]);
    if (!finite) return absl::InvalidArgumentError("the sum would overflow to infinity");
    for (size_t i = 0; i < n; ++i) out[i] += scale * in[i];
    uint32_t sum_bits = MaxAbsBits(sum_);
    float max_sum;
    std::memcpy(&max_sum, &sum_bits, sizeof(max_sum));
    bound_ = max_sum;
  }
  total_samples_ += samples;
  loss_sum_ += loss_sum;
  contributors_ += contributors;
  return absl::OkStatus();
}

void GradientAccumulator::MeanInto(absl::Span<float> out) const {
  const float inv = 1.0f / static_cast<float>(total_samples_);
  for (size_t i = 0; i < sum_.size(); ++i) out[i] = sum_[i] * inv;
}

}  // namespace hips
