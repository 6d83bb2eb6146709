#include "services/core/gradient_accumulator.h"

#include <algorithm>

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
  if (samples <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("sample count must be positive, got ", samples));
  }
  float* __restrict out = sum_.data();
  const float* __restrict in = values.data();
  const size_t n = sum_.size();
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
