#include "services/data/shard_sampler.h"

#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hips {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

absl::StatusOr<ShardSampler> ShardSampler::Create(int64_t num_examples, int worker_index,
                                                  int num_workers, int64_t batch_size,
                                                  uint64_t seed) {
  if (num_workers <= 0 || worker_index < 0 || worker_index >= num_workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker index ", worker_index, " is not in [0, ", num_workers, ")"));
  }
  std::vector<int64_t> shard;
  for (int64_t i = worker_index; i < num_examples; i += num_workers) shard.push_back(i);
  return FromExamples(std::move(shard), worker_index, batch_size, seed);
}

absl::StatusOr<ShardSampler> ShardSampler::FromExamples(std::vector<int64_t> examples,
                                                        int worker_index, int64_t batch_size,
                                                        uint64_t seed) {
  if (batch_size <= 0 || batch_size > static_cast<int64_t>(examples.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch size ", batch_size, " does not fit a shard of ", examples.size(), " examples"));
  }
  return ShardSampler(std::move(examples), worker_index, batch_size, seed);
}

ShardSampler::ShardSampler(std::vector<int64_t> shard, int worker_index, int64_t batch_size,
                           uint64_t seed)
    : shard_(std::move(shard)), worker_index_(worker_index), batch_size_(batch_size), seed_(seed) {}

std::vector<int64_t> ShardSampler::Batch(int64_t step) {
  const int64_t epoch = step / steps_per_epoch();
  if (epoch != cached_epoch_) {
    order_ = shard_;
    // Fisher-Yates with an explicit draw, so the order is the same with every
    // standard library.
    std::mt19937_64 rng(SplitMix64(seed_ ^ SplitMix64(static_cast<uint64_t>(worker_index_) ^
                                                      SplitMix64(static_cast<uint64_t>(epoch)))));
    for (size_t i = order_.size() - 1; i > 0; --i) {
      std::swap(order_[i], order_[rng() % (i + 1)]);
    }
    cached_epoch_ = epoch;
  }
  const int64_t first = (step % steps_per_epoch()) * batch_size_;
  return std::vector<int64_t>(order_.begin() + first, order_.begin() + first + batch_size_);
}

}  // namespace hips
