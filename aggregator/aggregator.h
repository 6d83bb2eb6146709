#ifndef HIPS_AGGREGATOR_AGGREGATOR_H_
#define HIPS_AGGREGATOR_AGGREGATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "aggregator/aggregate_queue.h"
#include "aggregator/aggregator_options.h"
#include "services/core/membership.h"
#include "services/core/push_ledger.h"
#include "services/core/quarantine.h"
#include "services/core/retention.h"
#include "services/core/weights_board.h"
#include "services/numeric/buffer_pool.h"
#include "services/numeric/compression.h"
#include "services/rounds/round_policy.h"
#include "services/time/clock.h"
#include "services/types/consistency.h"
#include "services/types/payloads.h"
#include "services/types/tier_status.h"

namespace hips {

// The aggregator tier's logic (an MDC, a mini data center in the story:
// docs/architecture.md), without networking. It keeps its workers'
// membership (leases), the exactly-once ledger of their pushes, the queue of
// aggregates towards HQ and the weights it serves; what a round is belongs
// to the round policy of the mode HQ's weights carry
// (services/rounds/round_policy.h: sync, async and ssp, fedavg with its
// draw and edge rounds). The policy admits or refuses each gradient, closes
// rounds and batches, and hands back what closed: an aggregate to queue for
// HQ (NextAggregate), or a round applied here (fedavg edge rounds: its
// pushes are answered here and its weights served to the workers).
// Gradients computed on a version before the newest mode switch are dropped
// (mode_changed).
//
// Membership (docs/faults.md): workers hold leases; a sync round is complete
// when every live worker's gradient is in, so a dead or paused worker holds
// a round up for at most one lease. A push is acknowledged end to end: its
// answer comes once HQ answered the aggregate that carries the gradient (or
// the gradient was dropped here), so a worker that got no answer knows it
// must push again. A retried push whose first attempt may have reached HQ
// through another aggregator is sent on alone, and HQ applies it only if it
// has not seen it. The PushLedger answers repeats of a push as its first
// attempt.
//
// aggregator.cc holds the workers' side, aggregator_upstream.cc HQ's.
//
// Thread-safe. Pushes are answered through callbacks, never with a thread
// waiting: a server hands over a push and is called back. Summation runs
// under the lock (it is the round's state); encoding an aggregate for a
// compressed hop does not (NextAggregate encodes on the forwarding
// thread). Nothing here makes an RPC; no callback runs under the lock.
class Aggregator : private RoundHost {
 public:
  using PushCallback = std::function<void(absl::StatusOr<PushResult>)>;

  explicit Aggregator(AggregatorOptions options);
  ~Aggregator() override;

  // A worker's gradient. `done` is called exactly once with its answer:
  // FAILED_PRECONDITION for a gradient its mode does not allow,
  // INVALID_ARGUMENT for a malformed one (both counted, here or at HQ), HQ's
  // answer for the aggregate the gradient went into, UNAVAILABLE if this
  // aggregator shuts down first (the worker pushes it again, elsewhere if
  // need be). It may be called before AcceptGradient returns (a refusal, a
  // repeat) or later, from the thread that settles the push (the forwarder
  // reporting HQ's answer, the deadline timer, Shutdown). While the queue
  // towards HQ is full, the push waits here (parked, holding no thread) and
  // is taken in when there is room. A push whose values are adoptable (read
  // into a buffer from SpareBuffer) may have its buffer taken over as a sum;
  // whatever buffer it is left with is kept for later pushes. The buffer
  // must live until `done` is called.
  void AcceptGradient(GradientPush push, PushCallback done);
  // The same, waiting for the answer (tests, in-process callers).
  absl::StatusOr<PushResult> AcceptGradient(GradientPush push);

  // A worker's heartbeat (`leaving`: it moves to another aggregator).
  // RESOURCE_EXHAUSTED for a worker that would join beyond max_workers.
  absl::StatusOr<HeartbeatAnswer> Heartbeat(const std::string& worker, int64_t incarnation,
                                            bool leaving);
  // The heartbeat of a process's homes (hips-worker --homes): each as
  // Heartbeat above. A home that is refused (quarantined, or beyond
  // max_workers) is skipped, and its pushes are refused as such; the first
  // refusal is returned only when every home was refused, so that one
  // quarantined home does not make its process fail over.
  absl::StatusOr<HeartbeatAnswer> Heartbeat(absl::Span<const std::string> homes,
                                            int64_t incarnation, bool leaving);
  // The cluster was already training when this aggregator first reached HQ
  // (it restarted): its rounds need only the workers that are live, not the
  // --workers it expects at start.
  void EndForming();
  // Where each worker's data order continues, as far as HQ knows.
  void SetDataPositions(std::map<std::string, int64_t> positions);

  // Counts a gradient that the adapter refused before it reached
  // AcceptGradient (malformed stream or header). `worker` (empty: not
  // known, or not identified as the sender) computed it on `version`: if
  // it is a live worker, a refusal of the content ends its part of that
  // version's round, as its gradient would have (RoundPolicy::Refused).
  void RecordRefusal(DropReason reason, const std::string& worker = "", int64_t version = -1);

  // Newer weights from HQ: the round of their version opens (sync) and then
  // they are published to workers. Older or equal versions are ignored.
  // Called from one thread (the HQ link).
  void PublishWeights(std::shared_ptr<const WeightsSnapshot> snapshot);

  // The weights workers pull (WaitAsync: a long poll).
  const WeightsBoard& weights() const { return board_; }
  // `incarnation`: the HQ incarnation of the caller's weights (0: none);
  // weights of another one are returned at once, whatever their version.
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WaitForWeights(
      int64_t min_version, absl::Time deadline, int64_t incarnation = 0) const {
    return board_.WaitFor(min_version, deadline, incarnation);
  }
  std::shared_ptr<const WeightsSnapshot> LatestWeights() const { return board_.Latest(); }
  // The newest weights from HQ (LatestWeights may be this aggregator's own
  // copy, in an edge round): what the HQ link holds for a delta.
  std::shared_ptr<const WeightsSnapshot> HqWeights() const;

  // Blocks until an aggregate is ready and returns it (encoded for the hop
  // to HQ), or returns nullopt once Shutdown was called. The caller reports
  // what became of it with ReportForwarded or ReportUndelivered.
  std::optional<AggregatePush> NextAggregate();
  // HQ answered: `result` is its ack or its refusal (HQ counts those).
  void ReportForwarded(const AggregatePush& aggregate, const absl::StatusOr<PushResult>& result);
  // The aggregate never reached HQ (this aggregator is shutting down).
  void ReportUndelivered(const AggregatePush& aggregate);
  // Hands back a buffer of the model's size (a forwarded aggregate's sum, a
  // push's spare): the next sum or push is written into it instead of a
  // fresh, zero-filled one. Others are freed.
  void RecycleSum(std::vector<float> sum);
  // A buffer of the model's size to read a push into (PushReceiver), if one
  // is spare; else an empty vector.
  std::vector<float> SpareBuffer();
  // Whether a push's receiver should sum its squares as chunks arrive:
  // --clip_norm reads the norm of every push, a robust round of 2 the
  // norms of both (robust_mean.h, rule 3).
  bool WantsSquaredNorms() const {
    return options_.clip_norm.kind != ClipNorm::Kind::kOff ||
           options_.robust.kind != RobustMean::Kind::kNone;
  }

  // Ends every wait and answers every push still here. Idempotent.
  void Shutdown();

  AggregatorCounters counters() const;
  // Its id, newest weights' version and counters (GetStatus).
  AggregatorStatus status() const;

  // How long it keeps a departed worker's ledger entry, in leases
  // (docs/faults.md, "Bounded state").
  static constexpr int kRetentionLeases = 5;
  // The sizes of its per-worker tables (tests of bounded state).
  struct Tables {
    size_t ledger = 0, remembered = 0, live = 0;
  };
  Tables tables() const;
  const AggregatorOptions& options() const { return options_; }

 private:
  // Answers to give once the lock is released.
  using Completions = std::vector<std::pair<PushCallback, absl::StatusOr<PushResult>>>;
  // Where an admitted gradient went: an open push of the ledger (its answer
  // comes when HQ answers), or an answer right away (a duplicate in its
  // round).
  struct Admitted {
    int64_t ticket = 0;
    std::optional<PushResult> answer;
  };

  // RoundHost: the policy's view of this tier (called under mu_).
  const Membership& members() const override;
  int64_t newest_version() const override;
  // A closed round: queued for HQ, or applied here (answers and weights
  // left for DeliverApplied).
  void Emit(RoundOutput output) override;

  absl::Time NextDeadline() const;
  // The deadline timer: expires leases, closes rounds and batches whose
  // time is up.
  void CloseDue(absl::Time now);
  // Takes a push in (the queue has room), answering it or leaving its
  // callback with the ledger.
  void Take(GradientPush& push, PushCallback done, Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes in parked pushes while the queue has room.
  void TakeParked(Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks a new gradient and hands it to the policy.
  absl::StatusOr<Admitted> Admit(const GradientPush& push, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Settles one gradient of an aggregate with `result` (its version set to
  // the gradient's own).
  void Settle(const ContributorRef& ref, const absl::StatusOr<PushResult>& result,
              Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts an accepted push and opens it in the ledger.
  ContributorRef Open(const GradientPush& push) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Scales `c` down to --clip_norm's bound if its norm is above it
  // (counted: gradients_clipped).
  void Clip(Contribution* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a gradient that claims more samples than --max_samples_per_push
  // allows as if it had the bound (counted: gradients_capped).
  void CapSamples(Contribution* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A strike against `worker` (--quarantine_ms); `now_out` puts it out of
  // the membership at once when the strike ends it (outside the policy's
  // calls; otherwise that waits for its next push or heartbeat).
  void Strike(const std::string& worker, bool now_out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or the refusal of a worker that is put out (which leaves the
  // membership then, if it had not).
  absl::Status CheckQuarantine(const std::string& worker, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers the pushes of rounds applied here and publishes the weights
  // they made: what Emit left for after the lock (call without mu_).
  void DeliverApplied() ABSL_LOCKS_EXCLUDED(mu_, publish_mu_);
  // Answers and counts the pushes of an aggregate that never reached HQ.
  void Undelivered(const AggregatePush& aggregate, const absl::Status& why,
                   Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Numbers `out` and queues it for HQ.
  void Queue(AggregatePush out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes `snapshot` in under mu_: what the policy makes of it is to be
  // published (null: not newer than what is here).
  std::shared_ptr<const WeightsSnapshot> TakeWeights(
      std::shared_ptr<const WeightsSnapshot> snapshot, Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts the gradients the policy holds, which will never be sent, as
  // dropped.
  void DiscardAll(DropReason reason, Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers and counts `refs` as dropped for `reason`.
  void DropHeld(std::vector<ContributorRef> refs, DropReason reason, Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a refused gradient; one of live worker `sender` (empty: none)
  // computed on `version` goes to the policy too (RoundPolicy::Refused).
  absl::Status Drop(DropReason reason, absl::Status why, const std::string& sender = "",
                    int64_t version = -1) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  VersionState Versions() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Run(Completions completions);

  // Constant after construction.
  const AggregatorOptions options_;
  Clock* const clock_;
  // This aggregator's line of rounds of its own (WeightsSnapshot::
  // edge_epoch), unique across restarts.
  const int64_t edge_epoch_;

  WeightsBoard board_;
  // Serializes publishing to board_ (HQ's weights and the weights of rounds
  // applied here), so that weights of HQ's previous incarnation are never
  // published after the new one's.
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  // Model-sized buffers for sums and pushes: enough for a round's sum, one
  // on its way to HQ and pushes in flight; beyond that a buffer is freed.
  // (Thread-safe itself.)
  BufferPool spares_{4};

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  // The newest weights' version, mode and size (-1: none yet).
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  // When the newest version's round opened (HQ's weights arrived).
  absl::Time round_opened_at_ ABSL_GUARDED_BY(mu_);
  ModeConfig mode_ ABSL_GUARDED_BY(mu_);
  int64_t mode_since_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t incarnation_ ABSL_GUARDED_BY(mu_) = 0;  // HQ's
  bool training_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t num_floats_ ABSL_GUARDED_BY(mu_) = 0;
  // The newest version HQ is known to be at (from its weights and acks).
  int64_t known_version_ ABSL_GUARDED_BY(mu_) = -1;
  // The mode's rules for the newest weights (null before any).
  std::unique_ptr<RoundPolicy> policy_ ABSL_GUARDED_BY(mu_);
  NormClipper clipper_ ABSL_GUARDED_BY(mu_){options_.clip_norm};
  NormClipper sample_cap_ ABSL_GUARDED_BY(mu_){options_.max_samples_per_push};
  Quarantine quarantine_ ABSL_GUARDED_BY(mu_){options_.quarantine};
  // HQ's newest weights.
  std::shared_ptr<const WeightsSnapshot> hq_weights_ ABSL_GUARDED_BY(mu_);
  // Left by Emit for DeliverApplied, from rounds applied here (fedavg edge
  // rounds): answers, and the weights to publish; `applied_pending_` says
  // there are some (set under mu_), so that every other push, heartbeat and
  // publish skips DeliverApplied's locks.
  Completions applied_acks_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const WeightsSnapshot> applied_weights_ ABSL_GUARDED_BY(mu_);
  // HQ's weights of the open round, held back until the tier has formed
  // (RoundPolicy::AwaitsForming: a fedavg draw), then served as
  // applied_weights_ are.
  std::shared_ptr<const WeightsSnapshot> held_for_forming_ ABSL_GUARDED_BY(mu_);
  // Serves held_for_forming_ once the tier has formed (then
  // DeliverApplied publishes it).
  void ServeIfFormed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // HQ's newer weights under --hq_buffer, held while the open round still
  // waits for members computing on its version (RoundPolicy::
  // HoldsNewerWeights); DeliverApplied takes them once it closed.
  std::shared_ptr<const WeightsSnapshot> held_for_round_ ABSL_GUARDED_BY(mu_);
  // Holds `snapshot` in held_for_round_ if it is to wait; false if it is
  // to be taken now.
  bool HoldForRound(const std::shared_ptr<const WeightsSnapshot>& snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The held weights, taken (what to publish), once the round they waited
  // for closed; null while it is open or nothing is held.
  std::shared_ptr<const WeightsSnapshot> TakeHeldForRound(Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // TakeWeights, then held until the tier formed if the policy says so:
  // what to publish now (null: nothing).
  std::shared_ptr<const WeightsSnapshot> Adopt(std::shared_ptr<const WeightsSnapshot> snapshot,
                                               Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::atomic<bool> applied_pending_{false};
  // Closed aggregates on their way to HQ: under mu_, but for its Encode
  // (thread-safe, run by the forwarding thread outside mu_).
  AggregateQueue queue_;
  // Workers' leases, and per worker its newest gradient's version,
  // gradients and samples seen.
  Membership members_ ABSL_GUARDED_BY(mu_);
  // Every push taken in, the ones waiting for HQ's answer, and each
  // worker's newest answer.
  PushLedger ledger_ ABSL_GUARDED_BY(mu_);
  // What it remembers of workers that left, and for how long (Retention:
  // kRetentionLeases leases after they were last heard from).
  Retention retention_ ABSL_GUARDED_BY(mu_);
  void ForgetLeftWorkers(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pushes waiting for room in the queue towards HQ, oldest first.
  std::deque<std::pair<GradientPush, PushCallback>> parked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> data_positions_ ABSL_GUARDED_BY(mu_);
  AggregatorCounters counters_ ABSL_GUARDED_BY(mu_);
  // Workers whose gradients were refused as non-finite, not yet told to
  // HQ: the next aggregate names them (AggregatePush::non_finite_workers).
  std::set<std::string> non_finite_unreported_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  // Last: it calls into the members above from its own thread.
  std::unique_ptr<Timer> timer_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_H_
