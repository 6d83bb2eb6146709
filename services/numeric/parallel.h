#ifndef HIPS_SERVICES_NUMERIC_PARALLEL_H_
#define HIPS_SERVICES_NUMERIC_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "absl/status/status.h"

// Summation on several cores (docs/performance.md): a tensor-sized pass is
// split into contiguous ranges, one per thread, the caller's included.

namespace hips {

// Threads for one pass over a tensor (process-wide; 1 by default, the
// aggregator sets --sum_threads). Passes below kParallelFloats run on the
// caller's thread alone: starting a thread costs more than they take.
void SetSummationThreads(int threads);
int SummationThreads();
// INVALID_ARGUMENT unless `threads` (--sum_threads) is in [1, 256].
absl::Status ValidateSummationThreads(int threads);
inline constexpr size_t kParallelFloats = size_t{1} << 22;

// Calls fn(begin, end) for contiguous ranges covering [0, n), concurrently.
template <typename Fn>
void ParallelRanges(size_t n, Fn fn) {
  const size_t parts =
      n < kParallelFloats ? 1 : std::min<size_t>(SummationThreads(), n / (kParallelFloats / 2));
  if (parts <= 1) {
    fn(size_t{0}, n);
    return;
  }
  std::vector<std::thread> helpers;
  const size_t step = (n + parts - 1) / parts;
  for (size_t p = 1; p < parts; ++p) {
    helpers.emplace_back([&fn, p, step, n] { fn(p * step, std::min(n, (p + 1) * step)); });
  }
  fn(size_t{0}, std::min(n, step));
  for (std::thread& t : helpers) t.join();
}

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_PARALLEL_H_
