#ifndef HIPS_HQ_PARAMETER_SERVER_H_
#define HIPS_HQ_PARAMETER_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/model_layout.h"
#include "services/core/payloads.h"
#include "services/core/sync_round.h"
#include "services/core/weights_board.h"
#include "services/models/optimizer.h"

namespace hips {

struct ParameterServerOptions {
  // Aggregates that make up one sync round (the number of aggregators).
  int expected_aggregators = 1;
  // Training budget: after this many versions the weights are final. 0 means
  // no budget.
  int64_t max_versions = 0;
  // Learning rate and its schedule over max_versions (the optimizer's other
  // settings are baked into the Optimizer).
  OptimizerOptions optimizer;
};

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& options);

struct ParameterServerStatus {
  int64_t version = 0;
  int64_t max_versions = 0;
  bool training_done = false;
  double last_loss = 0.0;  // mean training loss of the newest applied round
  int64_t samples_applied = 0;
  int64_t gradients_applied = 0;  // worker gradients inside applied aggregates
  int64_t aggregates_received = 0;
  int64_t aggregates_applied = 0;
  int64_t aggregates_duplicate = 0;
  std::map<std::string, int64_t> aggregates_dropped;  // by DropReasonName
};

// HQ's logic (the NPDC tier), without networking: owns the master weights
// through an Optimizer, sums the aggregates of the open sync round and, once
// every expected aggregator contributed, applies
//   w_{v+1} = step(w_v, Σ_i n_i·g_i / Σ_i n_i)
// and publishes version v+1.
//
// Thread-safe. The optimizer step runs outside the round lock (under its own
// lock); rounds close one at a time, since version v+1 opens only after v is
// applied.
class ParameterServer {
 public:
  // `on_publish` (may be empty) is called with every newly published
  // snapshot, outside every lock of this class.
  ParameterServer(ParameterServerOptions options, ModelLayout layout,
                  std::unique_ptr<Optimizer> optimizer,
                  std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish = {});

  // One aggregator's sum for a round. FAILED_PRECONDITION for a version
  // other than the open round's (counted by reason), INVALID_ARGUMENT for a
  // malformed aggregate, INTERNAL if the optimizer failed.
  absl::StatusOr<PushResult> AcceptAggregate(const AggregatePush& aggregate);

  // Counts an aggregate that the adapter refused before it reached
  // AcceptAggregate (malformed stream or header).
  void RecordRefusal(DropReason reason);

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WaitForWeights(
      int64_t min_version, absl::Time deadline) const {
    return board_.WaitFor(min_version, deadline);
  }
  std::shared_ptr<const WeightsSnapshot> LatestWeights() const { return board_.Latest(); }

  ParameterServerStatus status() const;
  const ModelLayout& layout() const { return layout_; }

  // Ends every wait for weights. Idempotent.
  void Shutdown() { board_.Shutdown(); }

 private:
  std::shared_ptr<const WeightsSnapshot> Snapshot(int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);

  // Constant after construction.
  const ParameterServerOptions options_;
  const ModelLayout layout_;
  const std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish_;

  WeightsBoard board_;

  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<Optimizer> optimizer_ ABSL_GUARDED_BY(apply_mu_);

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  SyncRound round_ ABSL_GUARDED_BY(mu_);
  ParameterServerStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hips

#endif  // HIPS_HQ_PARAMETER_SERVER_H_
