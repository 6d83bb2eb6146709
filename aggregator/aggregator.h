#ifndef HIPS_AGGREGATOR_AGGREGATOR_H_
#define HIPS_AGGREGATOR_AGGREGATOR_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/payloads.h"
#include "services/core/sync_round.h"
#include "services/core/weights_board.h"

namespace hips {

struct AggregatorOptions {
  std::string id = "agg-0";
  // Gradients per sync round: the number of workers assigned to this
  // aggregator.
  int expected_workers = 1;
};

absl::Status ValidateAggregatorOptions(const AggregatorOptions& options);

// Counters of one aggregator, all monotonic.
struct AggregatorCounters {
  int64_t gradients_received = 0;
  int64_t gradients_accepted = 0;
  int64_t gradients_duplicate = 0;
  std::map<std::string, int64_t> gradients_dropped;  // by DropReasonName
  int64_t rounds_closed = 0;
};

// The MDC tier's logic, without networking. Workers' gradients for the
// current version are summed (sample-weighted) in a SyncRound; when every
// expected worker contributed, the round's sum is queued for HQ
// (NextAggregate). Weights that HQ publishes (PublishWeights) are served to
// workers (WaitForWeights) and open the round of their version.
//
// Thread-safe. Summation runs under the round's lock; nothing here makes an
// RPC.
class Aggregator {
 public:
  explicit Aggregator(AggregatorOptions options);

  // A worker's gradient. FAILED_PRECONDITION for a version other than the
  // open round's, INVALID_ARGUMENT for a malformed gradient; both counted.
  absl::StatusOr<PushResult> AcceptGradient(const GradientPush& push);

  // Counts a gradient that the adapter refused before it reached
  // AcceptGradient (malformed stream or header).
  void RecordRefusal(DropReason reason);

  // Newer weights from HQ: the round of their version opens (unless training
  // is done) and then they are published to workers. Older or equal
  // versions are ignored. Called from one thread (the HQ link).
  void PublishWeights(std::shared_ptr<const WeightsSnapshot> snapshot);

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WaitForWeights(
      int64_t min_version, absl::Time deadline) const {
    return board_.WaitFor(min_version, deadline);
  }
  std::shared_ptr<const WeightsSnapshot> LatestWeights() const { return board_.Latest(); }

  // Blocks until a closed round's aggregate is ready and returns it, or
  // returns nullopt once Shutdown was called.
  std::optional<AggregatePush> NextAggregate();

  // Ends every wait. Idempotent.
  void Shutdown();

  AggregatorCounters counters() const;
  const AggregatorOptions& options() const { return options_; }

 private:
  // Constant after construction.
  const AggregatorOptions options_;

  WeightsBoard board_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  std::unique_ptr<SyncRound> round_ ABSL_GUARDED_BY(mu_);  // created with the first weights
  std::deque<AggregatePush> outbox_ ABSL_GUARDED_BY(mu_);
  AggregatorCounters counters_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_H_
