#ifndef HIPS_SERVICES_NUMERIC_BUFFER_POOL_H_
#define HIPS_SERVICES_NUMERIC_BUFFER_POOL_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/types/payloads.h"

namespace hips {

// Keeps a few freed float buffers for reuse. A model-sized buffer that is
// refilled every version (the weights HQ publishes, the weights a tier
// receives) then costs neither a zero-fill nor a page fault per page again
// (docs/performance.md, step 10). Thread-safe.
class BufferPool {
 public:
  explicit BufferPool(size_t max_kept) : max_kept_(max_kept) {}

  // A buffer of exactly n floats: a kept one (its old contents: the caller
  // overwrites them) or else a new, zero-filled one.
  std::vector<float> Take(size_t n);
  // A kept buffer of exactly n floats, or an empty vector.
  std::vector<float> TakeIfKept(size_t n);
  // Keeps `buffer` if there is room (the newest are kept).
  void Give(std::vector<float> buffer);

  size_t kept() const;

 private:
  const size_t max_kept_;
  mutable absl::Mutex mu_;
  std::vector<std::vector<float>> kept_ ABSL_GUARDED_BY(mu_);
};

// The process's pool of weights buffers.
BufferPool& WeightsBuffers();

// A snapshot whose weights buffer goes back to WeightsBuffers() when its
// last reference is released.
std::shared_ptr<WeightsSnapshot> NewRecycledSnapshot();

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_BUFFER_POOL_H_
