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
#include "hq/aggregator_roster.h"
#include "hq/divergence_guard.h"
#include "hq/parameter_server_options.h"
#include "hq/trainer.h"
#include "services/core/membership.h"
#include "services/core/push_ledger.h"
#include "services/core/retention.h"
#include "services/core/weights_board.h"
#include "services/models/checkpoint.h"
#include "services/models/optimizer.h"
#include "services/numeric/buffer_pool.h"
#include "services/rounds/round_policy.h"
#include "services/time/clock.h"
#include "services/types/consistency.h"
#include "services/types/model_layout.h"
#include "services/types/payloads.h"
#include "services/types/tier_status.h"

namespace hips {

// HQ's logic (the NPDC, North Pole data center, in the story:
// docs/architecture.md), without networking. It keeps its aggregators'
// membership (leases and what each reports), the exactly-once ledgers of
// aggregates and of the worker gradients inside them, the master weights
// and their line of versions (Trainer), and publishes every version. What a
// round is belongs to the round policy of the mode (services/rounds: sync
// rounds of every live aggregator's sum, async and ssp applying each
// aggregate with its staleness, fedavg's mean delta with server momentum);
// each closed round is one optimizer step, with the settings and learning
// rate the policy gives (docs/modes.md). Every version's snapshot carries
// the mode it is trained in; a switch (SetMode) takes effect at the next
// version, and gradients computed on versions before it are dropped
// (mode_changed), never applied.
//
// Thread-safe. Aggregates are handled one at a time (an update needs the
// previous one), status() does not wait for an optimizer step.
class ParameterServer : private RoundHost {
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
  ~ParameterServer() override;

  // One aggregator's sum. FAILED_PRECONDITION for an aggregate its mode
  // does not allow (counted by reason), INVALID_ARGUMENT for a malformed
  // one. A repeat of an aggregate (or of a worker gradient inside it) that
  // HQ already took in is answered as a duplicate, never applied twice.
  // Applies the update at once when the aggregate completes a sync round or
  // in async and ssp; returns after it. A float32 sum whose values are
  // adoptable may have its buffer taken over as a round's sum.
  absl::StatusOr<PushResult> AcceptAggregate(const AggregatePush& aggregate);

  // Counts an aggregate that the adapter refused before it reached
  // AcceptAggregate (malformed stream or header). `aggregator` (empty: not
  // known, or not identified as the sender) made it for `version`: if it is
  // live, a refusal of the content ends its part of that version's round.
  void RecordRefusal(DropReason reason, const std::string& aggregator = "", int64_t version = -1);

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

  // The counters, and the open round and whom it waits for.
  // (Callable anywhere, the publish callback included: it takes only the
  // status lock.)
  ParameterServerStatus status() const ABSL_LOCKS_EXCLUDED(mu_);

  // How long HQ keeps a departed member's ledger entry and data position,
  // in leases (docs/faults.md, "Bounded state").
  static constexpr int kRetentionLeases = 5;
  // The sizes of HQ's per-member tables (tests of bounded state).
  struct Tables {
    size_t aggregator_ledger = 0, worker_ledger = 0, data_positions = 0, remembered = 0;
  };
  Tables tables() ABSL_LOCKS_EXCLUDED(apply_mu_);
  const ModelLayout& layout() const { return layout_; }

  // The first step of a graceful stop: returns once every aggregate being
  // applied is applied; from then on AcceptAggregate answers UNAVAILABLE
  // (nothing recorded: the aggregator sends it again to the next HQ), so a
  // Capture after it holds everything HQ ever acknowledged as applied.
  // Idempotent.
  void StopIntake();

  // Ends every wait for weights and stops the deadline timer. Idempotent.
  void Shutdown();

 private:
  // One update: steps with the trainer's mean at `lr` and publishes the
  // next version. `staleness` maps each staleness to the number of worker
  // gradients in the update that had it; `started` is when the update began
  // (before its mean was computed), for the update time in the status.
  void ApplyUpdate(double lr, int64_t samples, double loss_sum,
                   const std::map<int64_t, int64_t>& staleness, absl::Time started)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // A switch requested for the version just made takes effect: the next
  // mode's policy replaces this one's.
  void SwitchIfDue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // AcceptAggregate with the values as HQ sums them; `wire_bytes` is the
  // payload as it travelled.
  absl::StatusOr<PushResult> Accept(const AggregatePush& aggregate, int64_t wire_bytes)
      ABSL_LOCKS_EXCLUDED(apply_mu_);
  // Counts a repeat.
  PushResult Duplicate(const AggregatePush& aggregate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Records an aggregate taken into an update (its gradients pending until
  // the update is applied).
  void Taken(const AggregatePush& aggregate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Expires aggregators' leases and closes a round that is then complete
  // or whose deadline passed with a quorum (the deadline timer).
  void CloseDueRound(absl::Time now) ABSL_LOCKS_EXCLUDED(apply_mu_);
  // RoundHost: the policy's view of this tier (called under apply_mu_).
  const Membership& members() const override;
  bool WaitsFor(const std::string& aggregator) const override;
  int64_t newest_version() const override;
  // A closed round (or an async aggregate): one optimizer step with its
  // mean, and the next version.
  void Emit(RoundOutput output) override;
  RoundPolicyOptions PolicyOptions(const ModeConfig& mode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  std::shared_ptr<const WeightsSnapshot> Snapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  void Publish(std::shared_ptr<const WeightsSnapshot> snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  absl::Status Drop(const AggregatePush& a, DropReason reason, absl::Status why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // A refused aggregate of live `aggregator` goes to the policy (a refusal
  // of its content settles the aggregator's part of the round).
  void Refused(const std::string& aggregator, int64_t version, DropReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // `workers`' gradients through `aggregator` were non-finite: once every
  // live worker's was since the last finite update, the run diverged.
  void NonFinite(const std::string& aggregator, const std::vector<std::string>& workers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // The run diverged at `version` for `reason`: roll back to the newest
  // healthy weights (--on_divergence=rollback, while rollbacks are left), or
  // stop with the last finite ones. Publishes the next version either way.
  void Diverge(int64_t version, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Counts the aggregate being accepted as received (with its outcome).
  void CountArrival(const AggregatePush& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_, mu_);
  int64_t arriving_bytes_ ABSL_GUARDED_BY(apply_mu_) = 0;
  // An aggregator's part of the round is over without a sum (its aggregate
  // was empty, a duplicate, or refused).
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
  // Copies whom the open round waits for into what status() reports (after
  // anything that may change it).
  void NoteRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const ParameterServerOptions options_;
  const ModelLayout layout_;
  const std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish_;
  const std::function<void(Checkpoint)> on_checkpoint_;
  Clock* const clock_;

  WeightsBoard board_;
  // Buffers compressed sums are decoded into (outside apply_mu_), and the
  // buffers of rounds' sums once applied.
  BufferPool decode_spares_{2};
  BufferPool round_spares_{2};

  // Serializes every change of the training state.
  absl::Mutex apply_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  Trainer trainer_ ABSL_GUARDED_BY(apply_mu_);
  // The mode's rules (and the previous mode's, which may still be on the
  // stack when a switch takes effect).
  std::unique_ptr<RoundPolicy> policy_ ABSL_GUARDED_BY(apply_mu_);
  std::unique_ptr<RoundPolicy> retired_policy_ ABSL_GUARDED_BY(apply_mu_);
  // Aggregates taken in, by aggregator, and the worker gradients inside
  // them, by worker: each applied at most once.
  PushLedger ledger_ ABSL_GUARDED_BY(apply_mu_);
  PushLedger worker_ledger_ ABSL_GUARDED_BY(apply_mu_);
  AggregatorRoster roster_ ABSL_GUARDED_BY(apply_mu_);
  // Worker -> where its data order continues (newest step accepted + 1).
  std::map<std::string, int64_t> data_positions_ ABSL_GUARDED_BY(apply_mu_);
  bool intake_stopped_ ABSL_GUARDED_BY(apply_mu_) = false;

  // Non-finite gradients and the weights to roll back to; where the run
  // diverged, if it did.
  DivergenceGuard guard_ ABSL_GUARDED_BY(apply_mu_);
  // --clip_norm over the aggregates.
  NormClipper clipper_ ABSL_GUARDED_BY(apply_mu_){options_.clip_norm};
  // What HQ remembers of members that left, and for how long (Retention:
  // kRetentionLeases leases after they were last heard from).
  Retention aggregator_retention_ ABSL_GUARDED_BY(apply_mu_);
  Retention worker_retention_ ABSL_GUARDED_BY(apply_mu_);
  void ForgetLeftMembers(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // A contribution of `a` that may repeat one of a member HQ forgot (why),
  // or nothing.
  std::optional<std::string> MayRepeatForgotten(const AggregatePush& a) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  Divergence divergence_ ABSL_GUARDED_BY(apply_mu_);
  const int64_t incarnation_;
  // What status() reports; written under both locks, read under mu_.
  mutable absl::Mutex mu_;
  ParameterServerStatus status_ ABSL_GUARDED_BY(mu_);
  // When the newest version's round opened (it was published).
  absl::Time round_opened_at_ ABSL_GUARDED_BY(mu_);

  // Last: it calls into the members above from its own thread.
  std::unique_ptr<Timer> timer_;
};

}  // namespace hips

#endif  // HIPS_HQ_PARAMETER_SERVER_H_
