#include "services/core/gradient_accumulator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/chunk_codec.h"

namespace hips {

void GradientAccumulator::Reset() {
  empty_ = true;
  bound_ = 0;
  total_samples_ = 0;
  loss_sum_ = 0.0;
  contributors_ = 0;
}

void GradientAccumulator::Materialize() const {
  if (!empty_) return;
  sum_.assign(num_floats_, 0.0f);
  empty_ = false;
}

absl::Span<const float> GradientAccumulator::sum() const {
  Materialize();
  return sum_;
}

std::vector<float> GradientAccumulator::TakeSum() {
  Materialize();
  std::vector<float> out = std::move(sum_);
  sum_ = std::vector<float>();
  Reset();
  return out;
}

absl::Status GradientAccumulator::Add(const FloatPieces& values, float scale, int64_t samples,
                                      double loss_sum, int64_t contributors) {
  if (values.bytes() != num_floats_ * sizeof(float)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gradient has ", values.bytes() / static_cast<double>(sizeof(float)),
                     " floats, the model has ", num_floats_));
  }
  if (samples <= 0 || samples > kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum_ + loss_sum)) {
    return absl::InvalidArgumentError("loss total would not be finite");
  }
  // One read of the input for finiteness and its largest magnitude. With
  // bound_ >= max |sum|, |sum + scale·in| <= bound_ + scale·max|in|: when that
  // is safely below FLT_MAX nothing can overflow, and the sum is updated in
  // one fused pass (the common case, about memory speed).
  const uint32_t max_bits = MaxAbsBits(values);
  if (max_bits >= kNonFiniteBits) return CheckFinite(values);
  float max_in;
  std::memcpy(&max_in, &max_bits, sizeof(max_in));
  const double bound = bound_ + static_cast<double>(scale) * static_cast<double>(max_in);
  const bool safe = bound * (1 + 1e-6) < static_cast<double>(std::numeric_limits<float>::max());
  if (empty_) {
    // The first contribution: the sum is scale·in, written, not added. (An
    // empty sum is 0, so only scale·in itself can overflow: bound says.)
    if (!safe) {
      absl::Status finite;
      values.ForEachRun([&](size_t, const char* in, size_t n) {
        for (size_t i = 0; i < n; ++i) {
          if (!std::isfinite(scale * LoadFloat(in + i * sizeof(float)))) {
            finite = absl::InvalidArgumentError("the sum would overflow to infinity");
          }
        }
      });
      if (!finite.ok()) return finite;
    }
    sum_.resize(num_floats_);
    float* __restrict out = sum_.data();
    values.ForEachRun([out, scale](size_t first, const char* in, size_t n) {
      float* __restrict o = out + first;
      for (size_t i = 0; i < n; ++i) o[i] = scale * LoadFloat(in + i * sizeof(float));
    });
    empty_ = false;
    bound_ = bound;
  } else if (safe) {
    float* __restrict out = sum_.data();
    values.ForEachRun([out, scale](size_t first, const char* in, size_t n) {
      float* __restrict o = out + first;
      for (size_t i = 0; i < n; ++i) o[i] += scale * LoadFloat(in + i * sizeof(float));
    });
    bound_ = bound;
  } else {
    // Near the float range: check first, so a refused contribution leaves
    // the sum untouched.
    float* __restrict out = sum_.data();
    bool finite = true;
    values.ForEachRun([out, scale, &finite](size_t first, const char* in, size_t n) {
      const float* o = out + first;
      for (size_t i = 0; i < n; ++i) {
        finite &= std::isfinite(o[i] + scale * LoadFloat(in + i * sizeof(float)));
      }
    });
    if (!finite) return absl::InvalidArgumentError("the sum would overflow to infinity");
    values.ForEachRun([out, scale](size_t first, const char* in, size_t n) {
      float* __restrict o = out + first;
      for (size_t i = 0; i < n; ++i) o[i] += scale * LoadFloat(in + i * sizeof(float));
    });
    const uint32_t sum_bits = MaxAbsBits(sum_);
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
  Materialize();
  const float inv = 1.0f / static_cast<float>(total_samples_);
  for (size_t i = 0; i < num_floats_; ++i) out[i] = sum_[i] * inv;
}

}  // namespace hips
