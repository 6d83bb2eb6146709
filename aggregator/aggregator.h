#ifndef HIPS_AGGREGATOR_AGGREGATOR_H_
#define HIPS_AGGREGATOR_AGGREGATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/admission.h"
#include "services/core/buffer_pool.h"
#include "services/core/clock.h"
#include "services/core/coalescing_batch.h"
#include "services/core/compression.h"
#include "services/core/consistency.h"
#include "services/core/membership.h"
#include "services/core/payloads.h"
#include "services/core/push_ledger.h"
#include "services/core/sync_round.h"
#include "services/core/tier_status.h"
#include "services/core/weights_board.h"

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

absl::Status ValidateAggregatorOptions(const AggregatorOptions& options);

// The aggregator tier's logic (an MDC, a mini data center in the story:
// docs/architecture.md), without networking. The mode travels with HQ's
// weights (PublishWeights):
//   sync   workers' gradients of the current version are summed
//          (sample-weighted) in a SyncRound; a closed round's sum is queued
//          for HQ (NextAggregate);
//   async  each gradient is queued at once, or summed with the others that
//          arrive within the coalescing window;
//   ssp    as async, dropping gradients already staler than the bound;
//   fedavg as sync, of the workers' model deltas; with participation < 1
//          each round's workers are drawn among the live ones
//          (DrawParticipants) and told to workers with the weights; a push
//          from a worker not drawn is refused (not_drawn), and the round is
//          complete once every live drawn worker is in. With edge rounds
//          (E > 1, HierFAVG) a closed round's mean delta moves this
//          aggregator's own copy of the model, which goes back to the
//          workers as the weights of (version, e + 1); the round's pushes are
//          acknowledged here (edge_applied). After the E-th round one
//          aggregate goes to HQ: the copy's delta from HQ's weights of the
//          version, weighted by all of its rounds' samples (EdgeAggregateInto),
//          carrying the last round's pushes, acknowledged end to end. A retry
//          new to this aggregator is refused (edge_retry): its first attempt
//          may be in another copy already.
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
// Thread-safe. Pushes are answered through callbacks, never with a thread
// waiting: a server hands over a push and is called back. Summation runs
// under the lock (it is the round's state); encoding an aggregate for a
// compressed hop does not (NextAggregate encodes on the forwarding
// thread). Nothing here makes an RPC; no callback runs under the lock.
class Aggregator {
 public:
  using PushCallback = std::function<void(absl::StatusOr<PushResult>)>;

  explicit Aggregator(AggregatorOptions options);
  ~Aggregator();

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
  // The cluster was already training when this aggregator first reached HQ
  // (it restarted): its rounds need only the workers that are live, not the
  // --workers it expects at start.
  void EndForming();
  // Where each worker's data order continues, as far as HQ knows.
  void SetDataPositions(std::map<std::string, int64_t> positions);

  // Counts a gradient that the adapter refused before it reached
  // AcceptGradient (malformed stream or header).
  void RecordRefusal(DropReason reason);

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

  // Ends every wait and answers every push still here. Idempotent.
  void Shutdown();

  AggregatorCounters counters() const;
  // Its id, newest weights' version and counters (GetStatus).
  AggregatorStatus status() const;
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

  absl::Time NextDeadline() const;
  // The deadline timer: expires leases, closes sync rounds and coalescing
  // batches whose time is up.
  void CloseDue(absl::Time now);
  // Takes a push in (the queue has room), answering it or leaving its
  // callback with the ledger.
  void Take(GradientPush& push, PushCallback done, Completions* completions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes in parked pushes while the queue has room.
  void TakeParked(Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks a new gradient and hands it to the mode's admission.
  absl::StatusOr<Admitted> Admit(const GradientPush& push, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A retry goes on alone (and counts for its sync round).
  absl::StatusOr<Admitted> AdmitRetry(const GradientPush& push, const Contribution& c,
                                      absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Admitted> AdmitSync(const GradientPush& push, const Contribution& c,
                                     absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Admitted> AdmitAsync(const GradientPush& push, const Contribution& c,
                                      absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Settles one gradient of an aggregate with `result` (its version set to
  // the gradient's own).
  void Settle(const ContributorRef& ref, const absl::StatusOr<PushResult>& result,
              Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts an accepted push and opens it in the ledger.
  ContributorRef Open(const GradientPush& push) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the open sync round if every live worker is in it (in fedavg
  // with participation: every live drawn worker).
  void MaybeCompleteRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RoundCovered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the closed round's sum for HQ; with edge rounds, moves the copy
  // instead until the version's last round.
  void EmitRound() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // fedavg with more than one edge round (and training not done).
  bool EdgeMode() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An edge round before the version's last closed: the copy moves, the
  // round's pushes are acknowledged, the next round opens.
  void AdvanceEdge() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The version's last edge round closed: the aggregate goes to HQ.
  void EmitEdgeAggregate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that `sender` is done with the open round without a
  // contribution (a retry sent on alone, or refused).
  void MarkCovered(const std::string& sender, int64_t version, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Admitted> RefuseEdgeRetry(const GradientPush& push, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers the pushes of closed edge rounds and publishes the newest copy:
  // what EmitRound left for after the lock (call without mu_).
  void DeliverEdge() ABSL_LOCKS_EXCLUDED(mu_, publish_mu_);
  // Queues the batch's sum for HQ and empties it.
  void EmitBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `sum`'s aggregate, taking its buffer (the accumulator is then
  // empty).
  void Enqueue(GradientAccumulator* sum, int64_t version, std::map<int64_t, int64_t> versions,
               std::vector<ContributorRef> refs, bool single = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Numbers `out` and queues it for HQ.
  void Queue(AggregatePush out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Encodes `aggregate` for a compressed hop (not a retried gradient going
  // on alone).
  void Encode(AggregatePush* aggregate) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts the gradients of the open round and the batch, which will never
  // be sent, as dropped.
  void DiscardAll(DropReason reason, Completions* completions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Drop(DropReason reason, absl::Status why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The refusal of a worker that would join beyond max_workers.
  absl::Status Full(const std::string& worker) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  VersionState Versions() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Run(Completions completions);

  // Constant after construction.
  const AggregatorOptions options_;
  Clock* const clock_;
  // This aggregator's line of edge rounds (WeightsSnapshot::edge_epoch).
  const int64_t edge_epoch_;

  WeightsBoard board_;
  // Serializes publishing to board_ (HQ's weights and edge copies), so that
  // an edge copy of HQ's previous incarnation is never published after the
  // new one's weights.
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  // Encodes aggregates on a compressed hop, with its error-feedback state
  // (null for fp32). Only the forwarding thread encodes.
  absl::Mutex encode_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::unique_ptr<Compressor> compressor_ ABSL_GUARDED_BY(encode_mu_);

  // Model-sized buffers for sums and pushes: enough for a round's sum, one
  // on its way to HQ and pushes in flight; beyond that a buffer is freed.
  // (Thread-safe itself.)
  BufferPool spares_{4};

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  // The newest weights' version, mode and size (-1: none yet).
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  ModeConfig mode_ ABSL_GUARDED_BY(mu_);
  int64_t mode_since_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t incarnation_ ABSL_GUARDED_BY(mu_) = 0;  // HQ's
  bool training_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t num_floats_ ABSL_GUARDED_BY(mu_) = 0;
  // The newest version HQ is known to be at (from its weights and acks).
  int64_t known_version_ ABSL_GUARDED_BY(mu_) = -1;
  std::unique_ptr<SyncRound> round_ ABSL_GUARDED_BY(mu_);  // sync, fedavg
  // fedavg with participation < 1: the workers drawn for the open round,
  // sorted (empty: everyone).
  std::vector<std::string> participants_ ABSL_GUARDED_BY(mu_);
  // HQ's newest weights.
  std::shared_ptr<const WeightsSnapshot> hq_weights_ ABSL_GUARDED_BY(mu_);
  // fedavg edge rounds: the open round's number and weights (HQ's at 0,
  // then this aggregator's copy), and the samples and loss of the closed
  // rounds of this version.
  int64_t edge_round_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const WeightsSnapshot> edge_copy_ ABSL_GUARDED_BY(mu_);
  int64_t edge_samples_ ABSL_GUARDED_BY(mu_) = 0;
  double edge_loss_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t edge_pushes_ ABSL_GUARDED_BY(mu_) = 0;
  // The workers live when the version's first edge round opened (sorted;
  // with participation: participants_ instead): its rounds wait for these
  // only, not for a worker that joined since (it may have pushed the
  // version's last round elsewhere, and then waits for the next version).
  std::optional<std::vector<std::string>> version_members_ ABSL_GUARDED_BY(mu_);
  // Left by AdvanceEdge for DeliverEdge: answers, and the copy to publish;
  // `edge_pending_` says there are some (set under mu_), so that every other
  // push, heartbeat and publish skips DeliverEdge's locks.
  Completions edge_acks_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const WeightsSnapshot> edge_publish_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> edge_pending_{false};
  std::unique_ptr<CoalescingBatch> batch_ ABSL_GUARDED_BY(mu_);  // async, ssp
  Membership members_ ABSL_GUARDED_BY(mu_);
  // Every push taken in, the ones waiting for HQ's answer, and each
  // worker's newest answer.
  PushLedger ledger_ ABSL_GUARDED_BY(mu_);
  // Pushes waiting for room in the queue towards HQ, oldest first.
  std::deque<std::pair<GradientPush, PushCallback>> parked_ ABSL_GUARDED_BY(mu_);
  std::vector<ContributorRef> round_refs_ ABSL_GUARDED_BY(mu_);  // summed in round_
  std::vector<ContributorRef> batch_refs_ ABSL_GUARDED_BY(mu_);  // summed in batch_
  std::map<std::string, int64_t> data_positions_ ABSL_GUARDED_BY(mu_);
  // Per worker: its newest gradient's version, gradients and samples seen.
  std::map<std::string, MemberInfo> worker_stats_ ABSL_GUARDED_BY(mu_);
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_);
  std::deque<AggregatePush> outbox_ ABSL_GUARDED_BY(mu_);
  AggregatorCounters counters_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  // Last: it calls into the members above from its own thread.
  std::unique_ptr<Timer> timer_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_H_
