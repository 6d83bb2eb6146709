#include "services/core/gradient_accumulator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace hips {

void GradientAccumulator::Reset() {
  std::fill(sum_.begin(), sum_.end(), 0.0f);
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
  // Checked first, so a refused contribution leaves the sum untouched.
  bool finite = true;
  for (size_t i = 0; i < n; ++i) finite &= std::isfinite(out[i] + scale * in[i]);
  if (!finite) return absl::InvalidArgumentError("the sum would overflow to infinity");
  for (size_t i = 0; i < n; ++i) out[i] += scale * in[i];
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
