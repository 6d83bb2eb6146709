#include "aggregator/aggregate_queue.h"

#include <utility>

#include "services/core/push_ledger.h"

namespace hips {

AggregateQueue::AggregateQueue(std::string aggregator, int max_queued,
                               CompressionOptions compression)
    : aggregator_(std::move(aggregator)),
      max_queued_(max_queued),
      compression_(compression),
      incarnation_(NewIncarnation()) {}

void AggregateQueue::Reset(size_t num_floats, std::vector<FloatRange> values_ranges) {
  absl::MutexLock lock(&encode_mu_);
  compressor_ =
      compression_.encoding == Encoding::kFp32
          ? nullptr
          : std::make_unique<Compressor>(compression_, num_floats, std::move(values_ranges));
}

void AggregateQueue::Push(AggregatePush aggregate) {
  aggregate.aggregator = aggregator_;
  aggregate.incarnation = incarnation_;
  aggregate.sequence = next_sequence_++;
  queued_.push_back(std::move(aggregate));
}

AggregatePush AggregateQueue::Pop() {
  AggregatePush out = std::move(queued_.front());
  queued_.pop_front();
  return out;
}

std::deque<AggregatePush> AggregateQueue::TakeAll() {
  std::deque<AggregatePush> all;
  all.swap(queued_);
  return all;
}

void AggregateQueue::Encode(AggregatePush* a) {
  if (a->single || a->contributors == 0) return;
  absl::MutexLock lock(&encode_mu_);
  if (compressor_ == nullptr || compressor_->num_floats() != a->sum.size()) return;
  a->encoded.encoding = compressor_->options().encoding;
  a->encoded.nonzeros = compressor_->Encode(a->sum, &a->encoded.bytes);
}

}  // namespace hips
