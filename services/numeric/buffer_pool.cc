#include "services/numeric/buffer_pool.h"

#include <utility>

namespace hips {

std::vector<float> BufferPool::Take(size_t n) {
  std::vector<float> buffer = TakeIfKept(n);
  if (buffer.size() != n) buffer.assign(n, 0.0f);
  return buffer;
}

std::vector<float> BufferPool::TakeIfKept(size_t n) {
  absl::MutexLock lock(&mu_);
  for (auto it = kept_.rbegin(); it != kept_.rend(); ++it) {
    if (it->size() == n) {
      std::vector<float> buffer = std::move(*it);
      kept_.erase(std::next(it).base());
      return buffer;
    }
  }
  return {};
}

void BufferPool::Give(std::vector<float> buffer) {
  if (buffer.empty() || max_kept_ == 0) return;
  absl::MutexLock lock(&mu_);
  if (kept_.size() == max_kept_) kept_.erase(kept_.begin());  // the oldest goes
  kept_.push_back(std::move(buffer));
}

size_t BufferPool::kept() const {
  absl::MutexLock lock(&mu_);
  return kept_.size();
}

BufferPool& WeightsBuffers() {
  // Two: one being filled while the previous version is still sent or
  // read, in every tier. Never destroyed (snapshots may outlive main).
  static BufferPool* pool = new BufferPool(2);
  return *pool;
}

std::shared_ptr<WeightsSnapshot> NewRecycledSnapshot() {
  return std::shared_ptr<WeightsSnapshot>(new WeightsSnapshot, [](WeightsSnapshot* s) {
    WeightsBuffers().Give(std::move(s->weights));
    delete s;
  });
}

}  // namespace hips
