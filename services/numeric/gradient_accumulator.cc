#include "services/numeric/gradient_accumulator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/parallel.h"
#include "services/types/drop_reason.h"

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

std::vector<float> GradientAccumulator::TakeBuffer() {
  std::vector<float> out = std::move(sum_);
  sum_ = std::vector<float>();
  Reset();
  return out;
}

void GradientAccumulator::Assign(std::vector<float> sum, double bound, int64_t total_samples,
                                 double loss_sum, int64_t contributors) {
  sum_ = std::move(sum);
  empty_ = false;
  bound_ = bound;
  total_samples_ = total_samples;
  loss_sum_ = loss_sum;
  contributors_ = contributors;
}

void GradientAccumulator::GiveBuffer(std::vector<float> buffer) {
  if (empty_ && sum_.size() != num_floats_ && buffer.size() == num_floats_) {
    sum_ = std::move(buffer);
  }
}

absl::Status GradientAccumulator::Add(const EncodedValues& values, float scale, int64_t samples,
                                      double loss_sum, int64_t contributors) {
  if (values.num_floats != static_cast<int64_t>(num_floats_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gradient has ", values.num_floats, " floats, the model has ", num_floats_));
  }
  if (samples <= 0 || samples > kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum_ + loss_sum)) {
    return NonFiniteError("loss total would not be finite");
  }
  absl::Status added;
  switch (values.encoding) {
    case Encoding::kFp32:
      if (values.bytes.bytes() != num_floats_ * sizeof(float)) return CheckEncodedValues(values);
      added = CanAdopt(values, scale) ? Adopt(values)
                                      : AddDense(values.bytes, scale, values.max_abs_bits);
      break;
    case Encoding::kFp16:
    case Encoding::kBf16:
      if (absl::Status s = CheckEncodedValues(values); !s.ok()) return s;
      decoded_.resize(num_floats_);
      DecodeInto(values, decoded_.data());
      added = AddDense(decoded_, scale, kUnknownMaxBits);
      break;
    case Encoding::kTopK:
      added = AddSparse(values, scale);
      break;
  }
  if (!added.ok()) return added;
  total_samples_ += samples;
  loss_sum_ += loss_sum;
  contributors_ += contributors;
  return absl::OkStatus();
}

bool GradientAccumulator::CanAdopt(const EncodedValues& values, float scale) const {
  return empty_ && scale == 1.0f && values.adoptable != nullptr &&
         values.adoptable->size() == num_floats_ && values.bytes.pieces().size() == 1 &&
         values.bytes.pieces()[0].data() == reinterpret_cast<const char*>(values.adoptable->data());
}

absl::Status GradientAccumulator::Adopt(const EncodedValues& values) {
  // The first contribution is the sum: take its buffer (the sum's own goes
  // back to the owner). Only the values themselves can be non-finite.
  uint32_t max_bits = values.max_abs_bits;
  if (max_bits == kUnknownMaxBits) max_bits = MaxAbsBits(values.bytes);
  if (max_bits >= kNonFiniteBits) return CheckFinite(values.bytes);
  float max_in;
  std::memcpy(&max_in, &max_bits, sizeof(max_in));
  std::swap(sum_, *values.adoptable);
  empty_ = false;
  bound_ = max_in;
  return absl::OkStatus();
}

absl::Status GradientAccumulator::AddSparse(const EncodedValues& values, float scale) {
  if (absl::Status s = CheckEncodedValues(values); !s.ok()) return s;
  Materialize();
  float* out = sum_.data();
  // The same bound as the dense path; near the float range, check first.
  float max_in = 0;
  values.bytes.ForEachRunOf<8>([&max_in](size_t, const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) max_in = std::max(max_in, std::fabs(LoadFloat(p + 8 * i + 4)));
  });
  const double bound = bound_ + static_cast<double>(scale) * static_cast<double>(max_in);
  auto for_each = [&values](auto fn) {
    values.bytes.ForEachRunOf<8>([&fn](size_t, const char* p, size_t n) {
      for (size_t i = 0; i < n; ++i) {
        uint32_t index;
        std::memcpy(&index, p + 8 * i, sizeof(index));
        fn(index, LoadFloat(p + 8 * i + 4));
      }
    });
  };
  if (bound * (1 + 1e-6) >= static_cast<double>(std::numeric_limits<float>::max())) {
    bool finite = true;
    for_each([&](uint32_t i, float v) { finite &= std::isfinite(out[i] + scale * v); });
    if (!finite) return NonFiniteError("the sum would overflow to infinity");
  }
  for_each([&](uint32_t i, float v) { out[i] += scale * v; });
  bound_ = bound;
  return absl::OkStatus();
}

absl::Status GradientAccumulator::AddDense(const FloatPieces& values, float scale,
                                           uint32_t known_max_bits) {
  // One read of the input for finiteness and its largest magnitude. With
  // bound_ >= max |sum|, |sum + scale·in| <= bound_ + scale·max|in|: when that
  // is safely below FLT_MAX nothing can overflow, and the sum is updated in
  // one fused pass (the common case, about memory speed).
  // (Skipped when the receiver already found it while the chunks arrived.)
  uint32_t max_bits = known_max_bits;
  if (max_bits == kUnknownMaxBits) {
    std::atomic<uint32_t> max_bits_seen{0};
    ParallelRanges(num_floats_, [&values, &max_bits_seen](size_t begin, size_t end) {
      uint32_t max = 0;
      values.ForEachRunIn(begin, end, [&max](size_t, const char* in, size_t n) {
        max = std::max(max, MaxAbsBitsOfRun(in, n));
      });
      uint32_t seen = max_bits_seen.load();
      while (max > seen && !max_bits_seen.compare_exchange_weak(seen, max)) {
      }
    });
    max_bits = max_bits_seen.load();
  }
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
            finite = NonFiniteError("the sum would overflow to infinity");
          }
        }
      });
      if (!finite.ok()) return finite;
    }
    sum_.resize(num_floats_);
    float* __restrict out = sum_.data();
    ParallelRanges(num_floats_, [&values, out, scale](size_t begin, size_t end) {
      values.ForEachRunIn(begin, end, [out, scale](size_t first, const char* in, size_t n) {
        ScaleRun(out + first, in, n, scale);
      });
    });
    empty_ = false;
    bound_ = bound;
  } else if (safe) {
    float* __restrict out = sum_.data();
    ParallelRanges(num_floats_, [&values, out, scale](size_t begin, size_t end) {
      values.ForEachRunIn(begin, end, [out, scale](size_t first, const char* in, size_t n) {
        AddScaledRun(out + first, in, n, scale);
      });
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
    if (!finite) return NonFiniteError("the sum would overflow to infinity");
    values.ForEachRun([out, scale](size_t first, const char* in, size_t n) {
      AddScaledRun(out + first, in, n, scale);
    });
    const uint32_t sum_bits = MaxAbsBits(sum_);
    float max_sum;
    std::memcpy(&max_sum, &sum_bits, sizeof(max_sum));
    bound_ = max_sum;
  }
  return absl::OkStatus();
}

void GradientAccumulator::MeanInto(absl::Span<float> out) const {
  Materialize();
  const float inv = 1.0f / static_cast<float>(total_samples_);
  const char* sum = reinterpret_cast<const char*>(sum_.data());
  float* into = out.data();
  // On HQ this is on every sync round's critical path: both cores.
  ParallelRanges(num_floats_, [sum, into, inv](size_t begin, size_t end) {
    ScaleRun(into + begin, sum + begin * sizeof(float), end - begin, inv);
  });
}

}  // namespace hips
