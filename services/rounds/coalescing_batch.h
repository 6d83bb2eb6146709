#ifndef HIPS_SERVICES_ROUNDS_COALESCING_BATCH_H_
#define HIPS_SERVICES_ROUNDS_COALESCING_BATCH_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/rounds/contribution.h"

namespace hips {

// The gradients an aggregator sums in async and ssp mode before sending them
// on as one aggregate: whatever versions they were computed on, for at most
// `window` after the first, and at most one per sender (`capacity` senders
// fill it). It remembers how many gradients were computed on each version,
// so HQ can check and record every gradient's staleness. Not thread-safe.
class CoalescingBatch {
 public:
  CoalescingBatch(size_t num_floats, int capacity, absl::Duration window)
      : capacity_(capacity), window_(window), accumulator_(num_floats) {}

  // Empties the batch; keeps the buffer.
  void Reset();

  // Adds a contribution that passed ValidateContribution, at time `now`.
  // INVALID_ARGUMENT (nothing added) if the sum would overflow.
  absl::Status Add(const Contribution& c, absl::Time now);

  bool empty() const { return senders_.empty(); }
  bool full() const { return static_cast<int>(senders_.size()) >= capacity_; }
  bool HasSender(const std::string& sender) const { return senders_.contains(sender); }
  // When the batch is due: `window` after its first gradient (InfiniteFuture
  // while empty).
  absl::Time CloseAt() const;
  // Gradients per version they were computed on.
  const std::map<int64_t, int64_t>& versions() const { return versions_; }
  int64_t oldest_version() const { return versions_.begin()->first; }  // not empty()
  const GradientAccumulator& accumulator() const { return accumulator_; }
  GradientAccumulator* mutable_accumulator() { return &accumulator_; }

 private:
  const int capacity_;
  const absl::Duration window_;
  absl::Time first_arrival_ = absl::InfiniteFuture();
  absl::flat_hash_set<std::string> senders_;
  std::map<int64_t, int64_t> versions_;
  GradientAccumulator accumulator_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_COALESCING_BATCH_H_
