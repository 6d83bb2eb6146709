#ifndef HIPS_HQ_PARAMETER_SERVER_H_
#define HIPS_HQ_PARAMETER_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/admission.h"
#include "services/core/buffer_pool.h"
#include "services/core/clock.h"
#include "services/core/consistency.h"
#include "services/core/membership.h"
#include "services/core/model_layout.h"
#include "services/core/payloads.h"
#include "services/core/push_ledger.h"
#include "services/core/sync_round.h"
#include "services/core/tier_status.h"
#include "services/core/weights_board.h"
#include "services/models/checkpoint.h"
#include "services/models/optimizer.h"

namespace hips {

struct ParameterServerOptions {
  // Aggregates that make up one sync round (the number of aggregators).
  int expected_aggregators = 1;
  // At most this many aggregators live at once (0: expected_aggregators); an
  // aggregator beyond them is refused with RESOURCE_EXHAUSTED, and its
  // aggregates are not taken into rounds (docs/security.md).
  int max_aggregators = 0;
  // The most workers the cluster has (0: the protocol's bound): an
  // aggregate listing more contributors is refused.
  int max_workers = 0;
  // The most samples one worker gradient may stand for: an aggregate of n
  // contributors claiming more than n times this is refused.
  int64_t max_batch_samples = 1 << 16;
  // Sync rounds with a deadline: once `round_deadline` passed since a
  // round's first aggregate, it closes with at least `quorum_aggregators`
  // (0: all live ones, i.e. no early close).
  int quorum_aggregators = 0;
  absl::Duration round_deadline = absl::InfiniteDuration();
  // Training budget: the weights are final after this many versions or
  // applied samples, whichever comes first. 0 means no such budget. The
  // learning-rate schedule runs over the sample budget when there is one,
  // else over the version budget.
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  // The mode at start (SetMode switches it later).
  ModeConfig mode;
  // Async and ssp apply each update of n samples with lr·n/N, N being this
  // (the global batch of a sync round: the learning rate keeps its meaning
  // per sample across modes). 0: no scaling.
  int64_t lr_reference_samples = 0;
  // Async and ssp: how a gradient's staleness shrinks its learning rate.
  StalenessScaling staleness_lr = StalenessScaling::kSqrt;
  // Async and ssp (SGD only): the momentum of their updates, when below the
  // optimizer's (< 0: the optimizer's). Asynchrony itself acts like extra
  // momentum; the learning rate is scaled by (1 - this) / (1 - momentum) so
  // the long-run step lr / (1 - momentum) stays the same (docs/modes.md).
  double async_momentum = -1;
  // fedavg (SGD only): HQ's step with the mean of the workers' deltas is
  // w <- w - server_lr · v, v <- server_momentum · v + mean delta (FedAvgM;
  // 1 and 0 are plain FedAvg). The optimizer's learning rate, schedule,
  // momentum, Nesterov and weight decay are then the workers' local SGD
  // (sent with the weights as LocalSgd).
  double server_lr = 1.0;
  double server_momentum = 0.0;
  // Learning rate and its schedule (the optimizer's other settings are
  // baked into the Optimizer).
  OptimizerOptions optimizer;
  // Aggregators hold a lease of this length, renewed by heartbeats and
  // pushes; a sync round never waits for one whose lease expired, nor for
  // one that reports no live workers.
  absl::Duration lease = absl::Seconds(2);
  // Identifies this run of HQ in its weights (0: the start time in µs).
  int64_t incarnation = 0;
  // Checkpoints (when the owner takes them, see ParameterServer's
  // on_checkpoint): every this many versions and/or this long since the
  // last one (0: not on that account), and always with the final weights.
  int64_t checkpoint_every_versions = 0;
  absl::Duration checkpoint_every = absl::ZeroDuration();
  // Where time comes from (leases, round deadlines, long polls, checkpoint
  // intervals); must outlive the server.
  Clock* clock = SystemClock();
};

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& options);
// INVALID_ARGUMENT for a mode the optimizer cannot train in (fedavg needs
// SGD).
absl::Status CheckModeFitsOptimizer(const ModeConfig& mode, const OptimizerOptions& optimizer);

struct ModeSwitch {
  ModeConfig previous;
  // The first version trained in the new mode.
  int64_t effective_version = 0;
};

// HQ's logic (the NPDC, North Pole data center, in the story:
// docs/architecture.md), without networking: owns the master weights
// through an Optimizer and turns aggregates into versions according to the
// consistency mode (docs/modes.md):
//   sync   sums the aggregates of the open round; when it closes applies
//          w_{v+1} = step(w_v, Σ n_i·g_i / Σ n_i);
//   async  applies every aggregate as it arrives, recording the staleness
//          τ = version − (the version it was computed on) of every gradient
//          in it;
//   ssp    as async, refusing aggregates with a gradient of τ > staleness;
//   fedavg rounds as in sync, of the workers' model deltas: applies
//          w_{v+1} = w_v − server_lr · (server momentum of Σ n_i·Δ_i / Σ n_i);
//          each version's weights carry the local SGD the workers run. A
//          round in which nobody took part (every drawn worker gone) moves
//          the version on with the weights unchanged.
// Every version's snapshot carries the mode it is trained in; a switch
// (SetMode) takes effect at the next version, and gradients computed on
// versions before it are dropped (mode_changed), never applied.
//
// Thread-safe. Aggregates are handled one at a time (an update needs the
// previous one), status() does not wait for an optimizer step.
class ParameterServer {
 public:
  // `on_publish` (may be empty) is called with every newly published
  // snapshot, in version order. `on_checkpoint` (may be empty) gets a
  // checkpoint whenever one is due (options); both run under the lock that
  // serializes training, so they must only hand the data on.
  ParameterServer(ParameterServerOptions options, ModelLayout layout,
                  std::unique_ptr<Optimizer> optimizer,
                  std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish = {},
                  std::function<void(Checkpoint)> on_checkpoint = {});

  // Continues from `checkpoint`: weights, optimizer state, version, samples,
  // mode, every sender's newest sequence and every worker's data position.
  // Call before any aggregate arrives. INVALID_ARGUMENT (nothing changed)
  // when it does not fit this model or optimizer.
  absl::Status Restore(const Checkpoint& checkpoint);
  // The current state as a checkpoint (also handed to on_checkpoint).
  absl::StatusOr<Checkpoint> Capture();
  const ParameterServerOptions& options() const { return options_; }
  ~ParameterServer();

  // One aggregator's sum. FAILED_PRECONDITION for an aggregate its mode
  // does not allow (counted by reason), INVALID_ARGUMENT for a malformed
  // one. A repeat of an aggregate (or of a worker gradient inside it) that
  // HQ already took in is answered as a duplicate, never applied twice.
  // Applies the update at once when the aggregate completes a sync round or
  // in async and ssp; returns after it. A float32 sum whose values are
  // adoptable may have its buffer taken over as a round's sum.
  absl::StatusOr<PushResult> AcceptAggregate(const AggregatePush& aggregate);

  // Counts an aggregate that the adapter refused before it reached
  // AcceptAggregate (malformed stream or header).
  void RecordRefusal(DropReason reason);

  // An aggregator's heartbeat: renews its lease and records the workers it
  // holds leases for. RESOURCE_EXHAUSTED for an aggregator that would join
  // beyond max_aggregators.
  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat);

  // Switches the mode when the next version is published. A second request
  // before then replaces the first. FAILED_PRECONDITION once training is
  // done.
  absl::StatusOr<ModeSwitch> SetMode(const ModeConfig& mode);

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WaitForWeights(
      int64_t min_version, absl::Time deadline, int64_t incarnation = 0) const {
    return board_.WaitFor(min_version, deadline, incarnation);
  }
  std::shared_ptr<const WeightsSnapshot> LatestWeights() const { return board_.Latest(); }
  // The weights aggregators pull (WaitAsync: a long poll).
  const WeightsBoard& weights() const { return board_; }

  ParameterServerStatus status() const;
  const ModelLayout& layout() const { return layout_; }

  // Ends every wait for weights and stops the deadline timer. Idempotent.
  void Shutdown();

 private:
  // One update: steps the optimizer with `mean` and publishes the next
  // version. `staleness` maps each staleness to the number of worker
  // gradients in the update that had it; `started` is when the update began
  // (before its mean was computed), for the update time in the status.
  void ApplyUpdate(absl::Span<const float> mean, double lr, int64_t samples, double loss_sum,
                   const std::map<int64_t, int64_t>& staleness, absl::Time started)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // AcceptAggregate with the values as HQ sums them; `wire_bytes` is the
  // payload as it travelled.
  absl::StatusOr<PushResult> Accept(const AggregatePush& aggregate, int64_t wire_bytes)
      ABSL_LOCKS_EXCLUDED(apply_mu_);
  absl::StatusOr<PushResult> AcceptSync(const AggregatePush& aggregate, const Contribution& c,
                                        absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  absl::StatusOr<PushResult> AcceptAsync(const AggregatePush& aggregate, const Contribution& c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Counts a repeat.
  PushResult Duplicate(const AggregatePush& aggregate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Records an aggregate taken into an update (its gradients pending until
  // the update is applied).
  void Taken(const AggregatePush& aggregate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Expires aggregators' leases and closes a sync round that is then
  // complete or whose deadline passed with a quorum (the deadline timer).
  void CloseDueRound(absl::Time now) ABSL_LOCKS_EXCLUDED(apply_mu_);
  // Applies the closed sync round.
  void ApplyRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // The learning rate of the next update, before per-update scaling.
  double ScheduledRate() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  std::shared_ptr<const WeightsSnapshot> Snapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  void Publish(std::shared_ptr<const WeightsSnapshot> snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  absl::Status Drop(const AggregatePush& a, DropReason reason, absl::Status why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // The refusal of an aggregator that would join beyond max_aggregators.
  absl::Status Full(const std::string& aggregator) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Counts the aggregate being accepted as received (with its outcome).
  void CountArrival(const AggregatePush& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_, mu_);
  int64_t arriving_bytes_ ABSL_GUARDED_BY(apply_mu_) = 0;
  // Whether the open sync round has every aggregate it waits for: one from
  // each live aggregator that has live workers (or is still forming).
  bool RoundComplete() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Applies the open sync round if it is complete.
  void MaybeApplyRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Sync: an aggregator's part of the round is over without a sum (its
  // aggregate was empty, a duplicate, or refused).
  void SenderDone(const AggregatePush& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  void RecordContributors(const AggregatePush& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  absl::Time NextDeadline() ABSL_LOCKS_EXCLUDED(apply_mu_);
  absl::StatusOr<Checkpoint> CaptureLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Hands a checkpoint to on_checkpoint if one is due.
  void MaybeCheckpoint() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  int64_t last_checkpoint_version_ ABSL_GUARDED_BY(apply_mu_) = -1;
  absl::Time last_checkpoint_time_ ABSL_GUARDED_BY(apply_mu_);
  // Copies version, samples, mode and the like into what status() reports.
  void CopyTrainingState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_, mu_);
  // Copies the membership into what status() reports.
  void PublishMembership() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);

  // Constant after construction.
  const ParameterServerOptions options_;
  const ModelLayout layout_;
  const std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish_;
  const std::function<void(Checkpoint)> on_checkpoint_;
  Clock* const clock_;

  WeightsBoard board_;
  // Buffers compressed sums are decoded into (outside apply_mu_).
  BufferPool decode_spares_{2};

  // Serializes every change of the training state.
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<Optimizer> optimizer_ ABSL_GUARDED_BY(apply_mu_);
  SyncRound round_ ABSL_GUARDED_BY(apply_mu_);
  // Aggregates taken in, by aggregator, and the worker gradients inside
  // them, by worker: each applied at most once.
  PushLedger ledger_ ABSL_GUARDED_BY(apply_mu_);
  PushLedger worker_ledger_ ABSL_GUARDED_BY(apply_mu_);
  Membership members_ ABSL_GUARDED_BY(apply_mu_);
  struct Report {
    std::vector<std::string> live_workers;
    bool forming = false;
    std::string address;
  };
  std::map<std::string, Report> reports_ ABSL_GUARDED_BY(apply_mu_);
  // Worker -> where its data order continues (newest step accepted + 1).
  std::map<std::string, int64_t> data_positions_ ABSL_GUARDED_BY(apply_mu_);
  const int64_t incarnation_;
  int64_t version_ ABSL_GUARDED_BY(apply_mu_) = 0;
  int64_t samples_applied_ ABSL_GUARDED_BY(apply_mu_) = 0;
  bool training_done_ ABSL_GUARDED_BY(apply_mu_) = false;
  ModeConfig mode_ ABSL_GUARDED_BY(apply_mu_);
  int64_t mode_since_ ABSL_GUARDED_BY(apply_mu_) = 0;
  std::optional<ModeConfig> pending_mode_ ABSL_GUARDED_BY(apply_mu_);
  // The mean gradient of an update: the optimizer's GradientBuffer(), or
  // own_mean_ if it has none.
  absl::Span<float> mean_ ABSL_GUARDED_BY(apply_mu_);
  std::vector<float> own_mean_;
  SgdSettings sgd_ ABSL_GUARDED_BY(apply_mu_);  // what the optimizer uses now
  // Sets the optimizer's SGD settings for an update in `mode`; returns the
  // learning-rate factor that keeps lr / (1 - momentum) (async, ssp).
  double UseSettingsOf(Mode mode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Drops the optimizer's state (momentum buffers), keeping the weights.
  void ResetOptimizerState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // The rate of the next update of the open round (sync, fedavg).
  double RoundRate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);

  // What status() reports; written under both locks, read under mu_.
  mutable absl::Mutex mu_;
  ParameterServerStatus status_ ABSL_GUARDED_BY(mu_);

  // Last: it calls into the members above from its own thread.
  std::unique_ptr<Timer> timer_;
};

}  // namespace hips

#endif  // HIPS_HQ_PARAMETER_SERVER_H_
