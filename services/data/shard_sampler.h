#ifndef HIPS_SERVICES_DATA_SHARD_SAMPLER_H_
#define HIPS_SERVICES_DATA_SHARD_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace hips {

// The batches one worker draws from its shard. Shard k of W holds the example
// indices i with i % W == k, so the shards of W workers are disjoint and
// together cover every example. Each epoch visits the shard in an order
// shuffled from (seed, k, epoch); a trailing partial batch is skipped. Batch(s)
// depends only on the constructor arguments and s, so a restarted worker or the
// single-process reference can recompute any worker's batch of any step.
// Not thread-safe (it caches the current epoch's order).
// The SplitMix64 finalizer: spreads nearby seeds far apart (the data
// order's, and each step's random draws: StepSeed).
uint64_t SplitMix64(uint64_t x);

class ShardSampler {
 public:
  // INVALID_ARGUMENT unless 0 <= worker_index < num_workers and
  // 0 < batch_size <= the shard's size.
  static absl::StatusOr<ShardSampler> Create(int64_t num_examples, int worker_index,
                                             int num_workers, int64_t batch_size, uint64_t seed);
  // The same over a shard given as its examples (a home's part under
  // --partition: partition.h), drawn as worker `worker_index`'s.
  static absl::StatusOr<ShardSampler> FromExamples(std::vector<int64_t> examples,
                                                   int worker_index, int64_t batch_size,
                                                   uint64_t seed);

  // Example indices of the batch for step `step` >= 0.
  std::vector<int64_t> Batch(int64_t step);

  int64_t shard_size() const { return static_cast<int64_t>(shard_.size()); }
  int64_t steps_per_epoch() const { return shard_size() / batch_size_; }

 private:
  ShardSampler(std::vector<int64_t> shard, int worker_index, int64_t batch_size, uint64_t seed);

  std::vector<int64_t> shard_;
  int worker_index_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_DATA_SHARD_SAMPLER_H_
