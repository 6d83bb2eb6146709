#ifndef HIPS_AGGREGATOR_AGGREGATE_QUEUE_H_
#define HIPS_AGGREGATOR_AGGREGATE_QUEUE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/numeric/compression.h"
#include "services/types/model_layout.h"
#include "services/types/payloads.h"

namespace hips {

// The aggregates an aggregator has closed and not yet handed to its link to
// HQ, oldest first: each numbered as it is queued (1, 2, 3... of the
// aggregator's own incarnation, so that HQ's ledger tells a repeat), at
// most `max_queued` before new pushes wait (backpressure). On a compressed
// hop each is encoded as it leaves, with the hop's error-feedback state.
// Not thread-safe, but for Reset and Encode (their own lock): the owner
// encodes outside its lock.
class AggregateQueue {
 public:
  AggregateQueue(std::string aggregator, int max_queued, CompressionOptions compression);

  // A new model of `num_floats` floats (`values_ranges`: its buffers): the
  // encoder starts afresh.
  void Reset(size_t num_floats, std::vector<FloatRange> values_ranges);

  void Push(AggregatePush aggregate);
  bool empty() const { return queued_.empty(); }
  // Pushes must wait: `max_queued` aggregates are waiting already.
  bool full() const { return static_cast<int>(queued_.size()) >= max_queued_; }
  // The oldest. Precondition: !empty().
  AggregatePush Pop();
  // Every aggregate still queued (a shutdown).
  std::deque<AggregatePush> TakeAll();

  // Encodes `aggregate` for a compressed hop; not a retried gradient going
  // on alone (HQ applies it only if it has not seen it, and the residual,
  // other gradients' unsent parts, must not ride on something that may be
  // dropped), nor an empty one.
  void Encode(AggregatePush* aggregate);

 private:
  const std::string aggregator_;
  const int max_queued_;
  const CompressionOptions compression_;
  std::deque<AggregatePush> queued_;
  const int64_t incarnation_;
  int64_t next_sequence_ = 1;

  absl::Mutex encode_mu_;
  std::unique_ptr<Compressor> compressor_ ABSL_GUARDED_BY(encode_mu_);  // null for fp32
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATE_QUEUE_H_
