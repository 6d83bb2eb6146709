#include "services/numeric/compression.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"
#include "services/types/drop_reason.h"

namespace hips {
namespace {

float FromBits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

// Rounds x >> shift to nearest, ties to even.
uint32_t ShiftRoundEven(uint32_t x, int shift) {
  const uint32_t result = x >> shift;
  const uint32_t rest = x & ((uint32_t{1} << shift) - 1);
  const uint32_t half = uint32_t{1} << (shift - 1);
  return result + ((rest > half || (rest == half && (result & 1))) ? 1 : 0);
}

uint16_t Load16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// |x| as its bit pattern (ordered like |x|), NaN as the largest.
uint32_t MagnitudeBits(float x) {
  const uint32_t bits = FloatBits(x) & 0x7fffffff;
  return bits > 0x7f800000 ? 0x7fffffff : bits;
}

template <typename Fn>
void ForEachHalf(const FloatPieces& bytes, Fn fn) {
  bytes.ForEachRunOf<2>([&fn](size_t first, const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) fn(first + i, Load16(p + 2 * i));
  });
}

template <typename Fn>
void ForEachEntry(const FloatPieces& bytes, Fn fn) {
  bytes.ForEachRunOf<8>([&fn](size_t first, const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) fn(first + i, Load32(p + 8 * i), LoadFloat(p + 8 * i + 4));
  });
}

}  // namespace

uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);  // NaN, inf
  if (abs >= 0x477ff000) return sign | 0x7bff;  // would round to inf: saturate at 65504
  if (abs >= 0x38800000) {                      // a normal half
    return sign | static_cast<uint16_t>(ShiftRoundEven(abs - 0x38000000, 13));
  }
  if (abs < 0x33000000) return sign;  // below half the smallest subnormal: 0
  // A subnormal half: round(|f| / 2^-24).
  const uint32_t mantissa = (abs & 0x7fffff) | 0x800000;
  const int shift = 126 - static_cast<int>(abs >> 23);
  return sign | static_cast<uint16_t>(ShiftRoundEven(mantissa, shift));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign != 0 ? -magnitude : magnitude;
  }
  if (exponent == 31) return FromBits(sign | 0x7f800000 | (mantissa << 13));
  return FromBits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t FloatToBfloat16(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  if ((x & 0x7fffffff) == 0x7f800000) return static_cast<uint16_t>(x >> 16);          // inf
  const uint32_t rounded = (x + 0x7fff + ((x >> 16) & 1)) >> 16;
  // A finite float just below FLT_MAX rounds to inf: saturate.
  if ((rounded & 0x7f80) == 0x7f80) return static_cast<uint16_t>((x >> 16 & 0x8000) | 0x7f7f);
  return static_cast<uint16_t>(rounded);
}

float Bfloat16ToFloat(uint16_t h) { return FromBits(static_cast<uint32_t>(h) << 16); }

double SquaredNorm(const EncodedValues& v) {
  if (v.encoding == Encoding::kFp32 && v.squared_norm >= 0) return v.squared_norm;
  // Eight partial sums: independent chains the CPU overlaps (a single
  // double accumulator would wait on each add).
  double sums[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  auto add = [&sums](size_t i, double x) { sums[i & 7] += x * x; };
  switch (v.encoding) {
    case Encoding::kFp32:  // (the common case: the vectorized kernel)
      v.bytes.ForEachRun(
          [&](size_t, const char* bytes, size_t n) { sums[0] += SquaredNormOfRun(bytes, n); });
      break;
    case Encoding::kFp16:
      ForEachHalf(v.bytes, [&](size_t i, uint16_t h) { add(i, HalfToFloat(h)); });
      break;
    case Encoding::kBf16:
      ForEachHalf(v.bytes, [&](size_t i, uint16_t h) { add(i, Bfloat16ToFloat(h)); });
      break;
    case Encoding::kTopK:
      ForEachEntry(v.bytes, [&](size_t i, uint32_t, float value) { add(i, value); });
      break;
  }
  return ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
}

absl::Status CheckEncodedValues(const EncodedValues& v) {
  if (v.num_floats < 0 || v.nonzeros < 0 ||
      (v.encoding == Encoding::kTopK && v.nonzeros > v.num_floats)) {
    return absl::InvalidArgumentError(absl::StrCat("num_floats and nonzeros: ", v.num_floats,
                                                   " floats, ", v.nonzeros, " nonzeros"));
  }
  const int64_t expected = PayloadBytes(v.encoding, v.num_floats, v.nonzeros);
  if (static_cast<int64_t>(v.bytes.bytes()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat("data: the ", EncodingName(v.encoding),
                                                   " payload has ", v.bytes.bytes(),
                                                   " bytes, expected ", expected));
  }
  absl::Status status;
  switch (v.encoding) {
    case Encoding::kFp32:
      if (v.max_abs_bits < kNonFiniteBits) return absl::OkStatus();  // known finite
      return CheckFinite(v.bytes);
    case Encoding::kFp16:
    case Encoding::kBf16: {
      const uint16_t mask = v.encoding == Encoding::kFp16 ? 0x7c00 : 0x7f80;
      ForEachHalf(v.bytes, [&](size_t i, uint16_t h) {
        if ((h & mask) == mask && status.ok()) {
          status = NonFiniteError(absl::StrCat("data: non-finite value at float ", i));
        }
      });
      return status;
    }
    case Encoding::kTopK: {
      int64_t previous = -1;
      ForEachEntry(v.bytes, [&](size_t, uint32_t index, float value) {
        if (!status.ok()) return;
        if (static_cast<int64_t>(index) <= previous || index >= v.num_floats) {
          status = absl::InvalidArgumentError(absl::StrCat(
              "data: top-k index ", index, " out of order or range (", v.num_floats, " floats)"));
        } else if (!std::isfinite(value)) {
          status = NonFiniteError(absl::StrCat("data: non-finite value at float ", index));
        }
        previous = index;
      });
      return status;
    }
  }
  return status;
}

void DecodeInto(const EncodedValues& v, float* out) {
  switch (v.encoding) {
    case Encoding::kFp32:
      v.bytes.CopyTo(out);
      return;
    case Encoding::kFp16:
      ForEachHalf(v.bytes, [out](size_t i, uint16_t h) { out[i] = HalfToFloat(h); });
      return;
    case Encoding::kBf16:
      ForEachHalf(v.bytes, [out](size_t i, uint16_t h) { out[i] = Bfloat16ToFloat(h); });
      return;
    case Encoding::kTopK:
      std::fill(out, out + v.num_floats, 0.0f);
      ForEachEntry(v.bytes, [out](size_t, uint32_t index, float value) { out[index] = value; });
      return;
  }
}

void AddDecodedInto(const EncodedValues& v, float* out) {
  switch (v.encoding) {
    case Encoding::kFp32:
      v.bytes.ForEachRun([out](size_t first, const char* bytes, size_t n) {
        for (size_t i = 0; i < n; ++i) {
          float value;
          std::memcpy(&value, bytes + i * sizeof(float), sizeof(float));
          out[first + i] += value;
        }
      });
      return;
    case Encoding::kFp16:
      ForEachHalf(v.bytes, [out](size_t i, uint16_t h) { out[i] += HalfToFloat(h); });
      return;
    case Encoding::kBf16:
      ForEachHalf(v.bytes, [out](size_t i, uint16_t h) { out[i] += Bfloat16ToFloat(h); });
      return;
    case Encoding::kTopK:
      ForEachEntry(v.bytes, [out](size_t, uint32_t index, float value) { out[index] += value; });
      return;
  }
}

absl::Status ValidateCompressionOptions(const CompressionOptions& o) {
  if (!(o.topk_ratio > 0 && o.topk_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top-k ratio must be in (0, 1], got ", o.topk_ratio));
  }
  return absl::OkStatus();
}

Compressor::Compressor(CompressionOptions options, size_t num_floats,
                       std::vector<FloatRange> values_ranges)
    : options_(std::move(options)),
      num_floats_(num_floats),
      values_ranges_(std::move(values_ranges)) {
  if (options_.error_feedback && options_.encoding != Encoding::kFp32) {
    residual_.assign(num_floats, 0.0f);
  }
  for (const FloatRange& r : values_ranges_) num_values_ += static_cast<size_t>(r.size);
}

int64_t Compressor::Encode(absl::Span<const float> values, std::string* out) {
  const size_t n = values.size();
  // What is to be sent: the values plus what earlier encodings held back.
  absl::Span<const float> send = values;
  if (!residual_.empty()) {
    work_.resize(n);
    for (size_t i = 0; i < n; ++i) work_[i] = values[i] + residual_[i];
    send = work_;
  }
  out->clear();
  switch (options_.encoding) {
    case Encoding::kFp32:
      out->assign(reinterpret_cast<const char*>(send.data()), n * sizeof(float));
      return 0;
    case Encoding::kFp16:
    case Encoding::kBf16: {
      const bool half = options_.encoding == Encoding::kFp16;
      out->resize(2 * n);
      char* p = out->data();
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = half ? FloatToHalf(send[i]) : FloatToBfloat16(send[i]);
        std::memcpy(p + 2 * i, &h, sizeof(h));
        if (!residual_.empty())
          residual_[i] = send[i] - (half ? HalfToFloat(h) : Bfloat16ToFloat(h));
      }
      ForgetValues();
      return 0;
    }
    case Encoding::kTopK: {
      const size_t k = std::min(
          n, num_values_ +
                 std::max<size_t>(1, static_cast<size_t>(std::ceil(options_.topk_ratio * n))));
      if (n == 0) return 0;
      // The k-th largest magnitude by radix selection on the bit patterns
      // (which order like the magnitudes): a histogram of the top 11 bits
      // finds its bucket, and only that bucket is searched. Then one scan in
      // index order takes what is above it, and what equals it while ties
      // last (lowest indices first).
      magnitudes_.resize(n);
      for (size_t i = 0; i < n; ++i) magnitudes_[i] = MagnitudeBits(send[i]);
      // Values always go: ranked above every finite float.
      for (const FloatRange& r : values_ranges_) {
        std::fill_n(magnitudes_.begin() + r.offset, r.size, 0x7fffffffu);
      }
      std::vector<size_t> histogram(size_t{1} << 11, 0);
      for (size_t i = 0; i < n; ++i) ++histogram[magnitudes_[i] >> 20];
      size_t bucket = histogram.size() - 1, larger = 0;
      while (larger + histogram[bucket] < k) larger += histogram[bucket--];
      scratch_.clear();
      for (size_t i = 0; i < n; ++i) {
        if ((magnitudes_[i] >> 20) == bucket) scratch_.push_back(magnitudes_[i]);
      }
      const size_t need = k - larger;  // from this bucket, in [1, its size]
      std::nth_element(scratch_.begin(), scratch_.begin() + (scratch_.size() - need),
                       scratch_.end());
      const uint32_t threshold = scratch_[scratch_.size() - need];
      size_t above = 0;
      for (size_t i = 0; i < n; ++i) above += magnitudes_[i] > threshold;
      size_t ties = k - above;
      out->resize(8 * k);
      char* p = out->data();
      if (!residual_.empty()) std::copy(send.begin(), send.end(), residual_.begin());
      size_t j = 0;
      for (size_t i = 0; i < n && j < k; ++i) {
        const uint32_t m = magnitudes_[i];
        if (m < threshold || (m == threshold && ties == 0)) continue;
        if (m == threshold) --ties;
        const uint32_t index = static_cast<uint32_t>(i);
        std::memcpy(p + 8 * j, &index, sizeof(index));
        std::memcpy(p + 8 * j + 4, &send[i], sizeof(float));
        if (!residual_.empty()) residual_[i] = 0.0f;
        ++j;
      }
      ForgetValues();
      return static_cast<int64_t>(k);
    }
  }
  return 0;
}

void Compressor::ForgetValues() {
  if (residual_.empty()) return;
  for (const FloatRange& r : values_ranges_) {
    std::fill_n(residual_.begin() + r.offset, r.size, 0.0f);
  }
}

}  // namespace hips
