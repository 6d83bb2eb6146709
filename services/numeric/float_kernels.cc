#include "services/numeric/float_kernels.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "services/types/float_pieces.h"

namespace hips {
namespace {

constexpr uint32_t kMagnitudeMask = 0x7fffffffu;
// Independent running maxima: one chain of max per lane would bound the
// scan by the instruction latency, not by the loads.
constexpr size_t kLanes = 16;

inline uint32_t LoadBits(const char* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return bits;
}

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HIPS_FLOAT_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define HIPS_FLOAT_KERNEL
#endif

HIPS_FLOAT_KERNEL uint32_t MaxAbsBitsOfRun(const char* in, size_t n) {
  uint32_t lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) {
      lanes[l] = std::max(lanes[l], LoadBits(in + (i + l) * sizeof(float)) & kMagnitudeMask);
    }
  }
  uint32_t max = 0;
  for (size_t l = 0; l < kLanes; ++l) max = std::max(max, lanes[l]);
  for (; i < n; ++i) max = std::max(max, LoadBits(in + i * sizeof(float)) & kMagnitudeMask);
  return max;
}

HIPS_FLOAT_KERNEL double SquaredNormOfRun(const char* in, size_t n) {
  // Blocks of kBlock floats in float lanes (the shape GCC vectorizes), each
  // block's sum added in double; a block whose float sum overflows is summed
  // again in double.
  constexpr size_t kBlock = kSquaresBlock;
  double total = 0;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    const char* block = in + begin * sizeof(float);
    const size_t count = std::min(kBlock, n - begin);
    float lanes[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= count; i += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) {
        const float v = LoadFloat(block + (i + l) * sizeof(float));
        lanes[l] += v * v;
      }
    }
    float sum = 0;
    for (size_t l = 0; l < kLanes; ++l) sum += lanes[l];
    for (; i < count; ++i) {
      const float v = LoadFloat(block + i * sizeof(float));
      sum += v * v;
    }
    if (sum <= std::numeric_limits<float>::max()) {
      total += sum;
      continue;
    }
    double exact = 0;  // overflowed, or not finite: in double
    for (size_t j = 0; j < count; ++j) {
      const double v = LoadFloat(block + j * sizeof(float));
      exact += v * v;
    }
    total += exact;
  }
  return total;
}

HIPS_FLOAT_KERNEL void ScaleRun(float* __restrict out, const char* __restrict in, size_t n,
                                float scale) {
  for (size_t i = 0; i < n; ++i) out[i] = scale * LoadFloat(in + i * sizeof(float));
}

HIPS_FLOAT_KERNEL void AddScaledRun(float* __restrict out, const char* __restrict in, size_t n,
                                    float scale) {
  for (size_t i = 0; i < n; ++i) out[i] += scale * LoadFloat(in + i * sizeof(float));
}

HIPS_FLOAT_KERNEL uint32_t ScaleRunWithMaxBits(float* __restrict out, const char* __restrict in,
                                               size_t n, float scale) {
  uint32_t lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) {
      const float v = scale * LoadFloat(in + (i + l) * sizeof(float));
      out[i + l] = v;
      lanes[l] = std::max(lanes[l], FloatBits(v) & kMagnitudeMask);
    }
  }
  uint32_t max = 0;
  for (size_t l = 0; l < kLanes; ++l) max = std::max(max, lanes[l]);
  for (; i < n; ++i) {
    const float v = scale * LoadFloat(in + i * sizeof(float));
    out[i] = v;
    max = std::max(max, FloatBits(v) & kMagnitudeMask);
  }
  return max;
}

HIPS_FLOAT_KERNEL void ScaleInPlace(float* x, size_t n, float scale) {
  for (size_t i = 0; i < n; ++i) x[i] *= scale;
}

HIPS_FLOAT_KERNEL void AddRun(float* __restrict out, const float* __restrict in, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] += in[i];
}

HIPS_FLOAT_KERNEL void MinMaxRuns(float* __restrict lo, float* __restrict hi, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float a = lo[i];
    const float b = hi[i];
    lo[i] = b < a ? b : a;
    hi[i] = b < a ? a : b;
  }
}

HIPS_FLOAT_KERNEL double SquaredDistanceOfRuns(const float* __restrict a, float fa,
                                                const float* __restrict b, size_t n) {
  constexpr size_t kBlock = 4096;
  double total = 0;
  for (size_t begin = 0; begin < n; begin += kBlock) {
    const size_t count = std::min(kBlock, n - begin);
    const float* x = a + begin;
    const float* y = b + begin;
    float lanes[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= count; i += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) {
        const float d = fa * x[i + l] - y[i + l];
        lanes[l] += d * d;
      }
    }
    float sum = 0;
    for (size_t l = 0; l < kLanes; ++l) sum += lanes[l];
    for (; i < count; ++i) sum += (fa * x[i] - y[i]) * (fa * x[i] - y[i]);
    if (sum <= std::numeric_limits<float>::max()) {
      total += sum;
      continue;
    }
    double exact = 0;
    for (size_t j = 0; j < count; ++j) {
      const double d = static_cast<double>(fa) * x[j] - static_cast<double>(y[j]);
      exact += d * d;
    }
    total += exact;
  }
  return total;
}

}  // namespace hips
