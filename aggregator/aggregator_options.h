#ifndef HIPS_AGGREGATOR_AGGREGATOR_OPTIONS_H_
#define HIPS_AGGREGATOR_AGGREGATOR_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/numeric/buffer_pool.h"
#include "services/numeric/compression.h"
#include "services/numeric/robust_mean.h"
#include "services/rounds/norm_clipper.h"
#include "services/rounds/round_policy.h"
#include "services/time/clock.h"

namespace hips {

struct AggregatorOptions {
  std::string id = "agg-0";
  // Gradients per sync round: the number of workers assigned to this
  // aggregator.
  int expected_workers = 1;
  // At most this many workers live here at once (0: twice
  // expected_workers, room for the workers of a failed peer aggregator); a
  // worker beyond them is refused with RESOURCE_EXHAUSTED and tries its next
  // aggregator (docs/security.md).
  int max_workers = 0;
  // The most samples one worker gradient may stand for (its weight in the
  // sum): a push claiming more is refused (INVALID_ARGUMENT).
  int64_t max_batch_samples = 1 << 16;
  // Bounded influence (docs/security.md): a gradient whose L2 norm is
  // above this bound is scaled down to it before it is summed (auto: three
  // times the median of the recent ones). Off by default: with a learning
  // rate that diverges, clipping kept the run from being caught (docs).
  ClipNorm clip_norm{ClipNorm::Kind::kOff};
  // A gradient that claims more samples than this bound counts as if it
  // had the bound (its mean is kept, its weight capped; counted:
  // gradients_capped). auto: kSampleCapMultiple (norm_clipper.h) times the median of the
  // recent claims. Off here; the daemon's --max_samples_per_push is auto.
  ClipNorm max_samples_per_push{ClipNorm::Kind::kOff};
  // A worker whose gradients are refused for their content or left out of
  // robust rounds Quarantine::kStrikes times in a row is put out for this
  // long (zero: never; the daemon's --quarantine_ms is 60 s).
  absl::Duration quarantine = absl::ZeroDuration();
  // How sync and fedavg rounds combine their gradients (--robust,
  // --trim_fraction; none: the sample-weighted mean). None here; the
  // daemon's --robust is trimmed_mean.
  RobustMean robust;
  // Sync rounds with a deadline (backup workers): once `round_deadline`
  // passed since a round's first gradient, the round closes with at least
  // `quorum_workers` (0: all of them, i.e. no early close).
  int quorum_workers = 0;
  absl::Duration round_deadline = absl::InfiniteDuration();
  // Async and ssp: gradients that arrive within this window of the first
  // are summed into one aggregate, whatever versions they were computed on
  // (sent at once when every worker of this aggregator is in, or when one
  // sends a second). Zero: each gradient is sent alone.
  absl::Duration coalesce_window = absl::ZeroDuration();
  // Backpressure: a push waits while this many aggregates are queued for HQ
  // (and not yet being sent). Without it, workers that outpace HQ in async
  // mode fill the queue with gradients that grow staler while they wait.
  int max_queued_aggregates = 1;
  // Workers hold a lease of this length, renewed by their heartbeats (and
  // pushes). A sync round never waits for a worker whose lease expired.
  absl::Duration lease = absl::Seconds(2);
  // Acknowledge a push only once HQ answered the aggregate that carries it
  // (end to end: what lets a worker that got no answer push again without
  // losing or doubling a gradient). false acknowledges on acceptance; the
  // unit tests of the round logic use it, playing HQ themselves.
  bool ack_after_hq = true;
  // How aggregates travel to HQ (docs/performance.md).
  CompressionOptions compression;
  // Where time comes from (leases, round deadlines, the coalescing window,
  // long polls); must outlive the aggregator.
  Clock* clock = SystemClock();
};

// INVALID_ARGUMENT for an option out of range.
absl::Status ValidateAggregatorOptions(const AggregatorOptions& options);

// What an aggregator's round policy needs for `mode` and a model of
// `num_floats` floats; `epoch` is its line of edge rounds, `spares` its
// pool of sum buffers.
RoundPolicyOptions PolicyOptionsOf(const AggregatorOptions& options, const ModeConfig& mode,
                                   size_t num_floats, int64_t epoch, BufferPool* spares);

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_OPTIONS_H_
