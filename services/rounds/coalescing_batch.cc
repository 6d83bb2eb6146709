#include "services/rounds/coalescing_batch.h"

namespace hips {

void CoalescingBatch::Reset() {
  first_arrival_ = absl::InfiniteFuture();
  senders_.clear();
  versions_.clear();
  accumulator_.Reset();
}

absl::Status CoalescingBatch::Add(const Contribution& c, absl::Time now) {
  if (absl::Status s = accumulator_.Add(c.values, c.scale, c.samples, c.loss_sum, c.contributors);
      !s.ok()) {
    return s;
  }
  senders_.insert(c.sender);
  versions_[c.version] += c.contributors;
  if (first_arrival_ == absl::InfiniteFuture()) first_arrival_ = now;
  return absl::OkStatus();
}

absl::Time CoalescingBatch::CloseAt() const {
  if (empty()) return absl::InfiniteFuture();
  return first_arrival_ + window_;
}

}  // namespace hips
