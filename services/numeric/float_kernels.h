#ifndef HIPS_SERVICES_NUMERIC_FLOAT_KERNELS_H_
#define HIPS_SERVICES_NUMERIC_FLOAT_KERNELS_H_

#include <cstddef>
#include <cstdint>

// The loops every byte of a gradient goes through on its way into a sum,
// over runs of unaligned little-endian float32 (FloatPieces::ForEachRun
// hands out such runs). Each is compiled twice, for the x86-64 baseline and
// for AVX2, and the loader picks the one the CPU runs (GCC's target_clones):
// Debian builds for the baseline, and on the baseline the largest-magnitude
// scan is a dependency chain of compare-and-blend (docs/performance.md,
// step 9).

namespace hips {

// max over i of (bits of in[i]) & 0x7fffffff: the largest magnitude as an
// ordered bit pattern (>= 0x7f800000 means a non-finite value). 0 when n = 0.
uint32_t MaxAbsBitsOfRun(const char* in, size_t n);

// Σ in[i]², in double: float lanes per block of kSquaresBlock (vectorized),
// each block's sum added in double in order; a block whose float sum
// overflows (|x| above ~1.8e19) is summed again in double. +inf or NaN for a
// non-finite value. Adding the results of consecutive calls over whole
// blocks, in order, gives the one call's result bit for bit.
inline constexpr size_t kSquaresBlock = 4096;
double SquaredNormOfRun(const char* in, size_t n);

// out[i] = scale · in[i].
void ScaleRun(float* out, const char* in, size_t n, float scale);

// out[i] += scale · in[i].
void AddScaledRun(float* out, const char* in, size_t n, float scale);

// out[i] = scale · in[i], and returns the largest magnitude of what it wrote
// (as MaxAbsBitsOfRun of `out`): one pass over a chunk that has just
// arrived, while it is still in cache.
uint32_t ScaleRunWithMaxBits(float* out, const char* in, size_t n, float scale);

// x[i] *= scale, in place.
void ScaleInPlace(float* x, size_t n, float scale);

// out[i] += in[i].
void AddRun(float* out, const float* in, size_t n);

// lo[i], hi[i] = min(lo[i], hi[i]), max(lo[i], hi[i]): one comparator of a
// sorting network, for n coordinates at once (robust_mean.cc).
void MinMaxRuns(float* lo, float* hi, size_t n);

// Σ (fa·a[i] - b[i])², in double (float lanes per block of 4096, as
// SquaredNormOfRun; a block whose float sum overflows is summed again in
// double).
double SquaredDistanceOfRuns(const float* a, float fa, const float* b, size_t n);

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_FLOAT_KERNELS_H_
