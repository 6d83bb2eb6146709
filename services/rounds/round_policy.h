#ifndef HIPS_SERVICES_ROUNDS_ROUND_POLICY_H_
#define HIPS_SERVICES_ROUNDS_ROUND_POLICY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "services/core/membership.h"
#include "services/numeric/buffer_pool.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/numeric/robust_mean.h"
#include "services/rounds/admission.h"
#include "services/rounds/contribution.h"
#include "services/types/consistency.h"
#include "services/types/payloads.h"
#include "services/types/sgd.h"

// How a tier turns contributions into rounds: one RoundPolicy per
// consistency mode (docs/architecture.md, "Round policies"). A tier (an
// aggregator over its workers, HQ over its aggregators) keeps membership,
// the exactly-once ledger, forwarding and publishing; its policy decides
//   what it admits    (version, staleness, participation, edge round),
//   when a round closes (complete; a deadline with a quorum; a coalescing
//                      window; an edge round done),
//   what it emits     (a sum to send on or apply, a retry alone, an edge
//                      round applied at the tier with the weights to serve),
// and, at HQ, how a closed round becomes an optimizer step. Adding a mode
// means a policy here, its proto and its flags; the tiers do not change.

namespace hips {

// What a policy made of a contribution.
struct Verdict {
  enum class Kind { kTaken, kDuplicate, kRefused };
  Kind kind = Kind::kTaken;
  // kRefused: the reason it is counted under, and the sender's answer.
  std::optional<Refusal> refusal;

  static Verdict Taken() { return Verdict{}; }
  static Verdict Duplicate() { return Verdict{Kind::kDuplicate, std::nullopt}; }
  static Verdict Refused(DropReason reason, absl::Status why) {
    return Verdict{Kind::kRefused, Refusal{reason, std::move(why)}};
  }
  static Verdict Refused(Refusal refusal) { return Verdict{Kind::kRefused, std::move(refusal)}; }
};

// What a policy hands its tier when a round (or a batch) closes.
struct RoundOutput {
  enum class Kind {
    kRound,      // a closed round's sum (sync, fedavg, an edge version's
                 // last round); contributors 0: the tier is done with
                 // `version` without a sum
    kBatch,      // async, ssp: a coalesced batch, or (HQ) one aggregate
    kAlone,      // a retried gradient sent on alone (HQ applies it only
                 // if it has not seen it)
    kEdgeRound,  // applied at this tier: acknowledge `refs`, serve `weights`
  };
  Kind kind = Kind::kRound;
  // The version of its contributions (the oldest, in a batch).
  int64_t version = 0;
  // Contributions per version they were computed on (every one of them).
  std::map<int64_t, int64_t> versions;
  int64_t contributors = 0;
  int64_t total_samples = 0;
  double loss_sum = 0.0;
  // Σ n_i·g_i (empty with no contributors, or when `values` holds it).
  std::vector<float> sum;
  // HQ's async policy: the aggregate's values as they arrived, read in
  // place (valid during the call that admitted it).
  std::optional<EncodedValues> values;
  // Contributions per staleness: the tier's version minus the version
  // they were computed on (what HQ records and async scales by).
  std::map<int64_t, int64_t> staleness;
  // The tier's handles of the contributions inside (its ledger's).
  std::vector<ContributorRef> refs;
  // An edge version's last round: the deltas of its earlier rounds, applied
  // at the aggregator (in total_samples, not in refs).
  int64_t edge_pushes = 0;
  // kEdgeRound: the aggregator's copy after the round, to serve.
  std::shared_ptr<const WeightsSnapshot> weights;
  // A robust combination (--robust): the senders it left out as outliers
  // (counted as trimmed), and the one a round of 2 held down to the
  // other's norm by more than robust_mean.h's kOutlierFactor (counted as
  // clipped).
  std::vector<std::string> trimmed;
  std::vector<std::string> held_down;
  // HQ's buffered rounds: the share of a full round this step stands for
  // (its MDC aggregates over the live MDCs HQ waits for); StepRate scales
  // by it. 1 otherwise.
  double round_share = 1.0;
};

// The tier a policy runs in (an aggregator over its workers, HQ over its
// aggregators): who holds a lease, the newest version known at the top, and
// where closed rounds go. The tier implements it over its own state; the
// policy calls it only from within the tier's own calls into the policy
// (under the tier's lock).
class RoundHost {
 public:
  virtual ~RoundHost() = default;
  // Who holds a lease at the tier (its workers, its aggregators), and
  // whether it still waits for the members its flags expect (a fresh
  // cluster's first rounds contain everyone).
  virtual const Membership& members() const = 0;
  // Whether a round waits for live member `id` (HQ: only for aggregators
  // that have workers, or have not said).
  virtual bool WaitsFor(const std::string& id) const { return true; }
  // HQ's newest version as far as the tier knows (HQ: its own; an
  // aggregator: from HQ's weights and answers).
  virtual int64_t newest_version() const = 0;
  // A round (or batch) closed: the tier sends it on, applies it, or (an
  // edge round) answers its pushes and serves its weights, before the
  // policy goes on. HQ publishes the next version from here, which calls
  // the policy's Begin.
  virtual void Emit(RoundOutput output) = 0;
};

struct RoundPolicyOptions {
  enum class Tier { kAggregator, kHq };
  Tier tier = Tier::kAggregator;
  ModeConfig mode;
  size_t num_floats = 0;
  // Sync rounds with a deadline (backup workers): once `round_deadline`
  // passed since a round's first contribution, it closes with at least
  // `quorum` senders done.
  int quorum = 1;
  absl::Duration round_deadline = absl::InfiniteDuration();
  // Async and ssp at an aggregator: contributions of at most `coalesce_
  // capacity` senders within `coalesce_window` of the first are summed into
  // one batch (zero: each goes on alone).
  int coalesce_capacity = 1;
  absl::Duration coalesce_window = absl::ZeroDuration();
  // fedavg at an aggregator: its id, which salts the participant draw, and
  // its line of edge rounds (WeightsSnapshot::edge_epoch).
  std::string id;
  int64_t edge_epoch = 0;
  // An aggregator's sync and fedavg rounds: how they combine their
  // contributions (--robust, --trim_fraction; none: the weighted sum).
  RobustMean robust;
  // Where a round's next sum buffer comes from once one left in an output
  // (null: allocated). Must outlive the policy.
  BufferPool* spares = nullptr;

  // HQ's step (HQ's policies only).
  struct HqStep {
    // The optimizer's own SGD settings (its --momentum, --nesterov,
    // --weight_decay).
    SgdSettings base;
    // Async and ssp: apply each update of n samples with lr·n/N, N this
    // (0: no scaling); the factor a gradient's staleness scales lr by; the
    // momentum of their updates when below the optimizer's (< 0: its own).
    int64_t lr_reference_samples = 0;
    StalenessScaling staleness_lr = StalenessScaling::kSqrt;
    double async_momentum = -1;
    // fedavg: w <- w - server_lr · v, v <- server_momentum · v + mean delta.
    double server_lr = 1.0;
    double server_momentum = 0.0;
  };
  HqStep hq;
};

// A consistency mode's rules for one tier. Not thread-safe: the tier calls
// it under its own lock. Calls that can close a round hand what closed to
// the host (RoundHost::Emit) before they return, in the order it is to be
// sent on or applied.
class RoundPolicy {
 public:
  // Called once a contribution is in (its sum added): opens the tier's
  // ledger entry and returns the handle the round's output carries.
  using Take = std::function<ContributorRef()>;

  // `host` owns the policy.
  RoundPolicy(RoundPolicyOptions options, RoundHost* host)
      : options_(std::move(options)), host_(host) {}
  virtual ~RoundPolicy() = default;

  const RoundPolicyOptions& options() const { return options_; }
  const ModeConfig& mode() const { return options_.mode; }

  // A new version from above opens its round: HQ's own next version, or at
  // an aggregator HQ's weights `weights`. Contributions still held that
  // the version supersedes are appended to `superseded` (the tier drops
  // them). Returns the weights to serve below: `weights`, or a copy that
  // carries what this round's members need (the draw, the edge epoch).
  virtual std::shared_ptr<const WeightsSnapshot> Begin(
      const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
      std::vector<ContributorRef>* superseded) = 0;

  // Whether the weights Begin returned must wait until the tier has formed
  // before anyone sees them (a draw among members that have not joined yet
  // cannot be made); the tier then serves Formed(tier, them) instead.
  virtual bool AwaitsForming() const { return false; }
  virtual std::shared_ptr<const WeightsSnapshot> Formed(
      const VersionState& tier, std::shared_ptr<const WeightsSnapshot> held) {
    return held;
  }

  // A contribution the tier found well-formed: refused (computed on
  // versions the mode does not allow, after training, ...), a duplicate of
  // one held, or taken (`take` was called).
  Verdict Admit(const Contribution& c, absl::Time now, const Take& take);

  // `sender` is done with the round of `version` without a sum (HQ: its
  // aggregate was empty, a repeat, or refused).
  virtual void MarkDone(const std::string& sender, int64_t version, absl::Time now) {}

  // A contribution of live member `sender` computed on `version` was
  // refused for `reason`, by this policy (after Admit), by the tier or by
  // its adapter; the tier calls this once it counted the refusal. A refusal
  // of its content (kInvalid, kNonFinite) ends the sender's part of that
  // version's round, as the contribution would have: no round waits for a
  // sender that has nothing more to send.
  virtual void Refused(const std::string& sender, int64_t version, DropReason reason,
                       absl::Time now);

  // The members a round waits for changed (one left, a lease ran out, the
  // tier formed, an aggregator's workers changed): closes a round that is
  // complete now.
  virtual void MembersChanged() {}
  // Closes what is due at `now`: a round that has everyone it waits for
  // (after a member left or its lease ran out, or the tier formed), one
  // whose deadline passed with a quorum, a batch whose window ended.
  virtual void Poll(absl::Time now) = 0;
  // When Poll has something to close at the latest (InfiniteFuture: not on
  // time alone).
  virtual absl::Time CloseAt() const = 0;

  // Hands back every contribution held and not yet in an output (a mode
  // switch, HQ restarted, shutdown: the tier drops them).
  virtual std::vector<ContributorRef> Release() = 0;

  // An aggregator under HQ's buffered rounds (ModeConfig::hq_buffer):
  // whether the open round still waits for live members computing on its
  // version, or holds contributions it cannot close yet (the tier forms),
  // so that newer weights from HQ wait until it closes (its work then
  // counts, however slow; docs/noniid.md).
  virtual bool HoldsNewerWeights() const { return false; }

  // The live members the open round still waits for, in id order (none:
  // no round open, everyone in, or a mode without rounds). What hips status
  // and the metrics show (docs/faults.md, "A round that waits says for
  // whom").
  virtual std::vector<std::string> WaitingFor() const { return {}; }

  // HQ: the SGD settings of this mode's steps, from the optimizer's own.
  virtual SgdSettings StepSettings(const SgdSettings& base) const { return base; }
  // HQ: the learning rate of the step with `out` (its mean), given the
  // schedule's rate and the settings the optimizer has now.
  virtual double StepRate(const RoundOutput& out, double scheduled_lr,
                          const SgdSettings& in_use) const;
  // HQ: the local SGD the workers run on a version's weights (fedavg).
  virtual LocalSgd WorkersSgd(double scheduled_lr) const { return LocalSgd(); }
  // HQ: steps take model deltas, not gradients (the optimizer's state of
  // one kind does not carry over into the other).
  virtual bool StepsOnDeltas() const { return false; }

 protected:
  // Admit past the checks every mode makes (training done, a future
  // version, one before the newest mode switch). A retry goes to AdmitRetry.
  virtual Verdict AdmitChecked(const Contribution& c, absl::Time now, const Take& take) = 0;
  // A retried worker gradient whose first attempt may have reached HQ
  // through another aggregator: by default it goes on alone, and HQ applies
  // it only if it has not seen it.
  virtual Verdict AdmitRetry(const Contribution& c, absl::Time now, const Take& take);
  // `c` as an output of its own (kAlone), or its refusal.
  Verdict Alone(const Contribution& c, const Take& take);
  // Moves `acc`'s sum and totals into `o` (no sum without contributors),
  // refilling `acc` with a spare buffer unless it is temporary; `o`'s
  // staleness from its versions.
  void TakeSum(GradientAccumulator* acc, RoundOutput* o, bool refill = true) const;
  // lr's factor that keeps lr / (1 - momentum) when a mode's momentum is
  // below the optimizer's.
  double MomentumFactor(const SgdSettings& in_use) const;

  const RoundPolicyOptions options_;
  RoundHost* const host_;
  // The tier's weights as of the newest Begin.
  VersionState tier_;
};

// The aggregate an aggregator sends HQ for a round's output (not an edge
// round: that is applied at the aggregator); aggregator and sequence are the
// sender's to fill in.
AggregatePush AggregateOf(RoundOutput output);

// The mean Σ n_i·g_i / Σ n_i of an output with samples, into `mean` (of
// the model's size): from its sum, or (HQ's async aggregates) from its
// values as they arrived.
void RoundMeanInto(const RoundOutput& output, absl::Span<float> mean);

// INVALID_ARGUMENT for a mode HQ's optimizer (`optimizer`: "sgd", "adam")
// cannot train in: fedavg runs SGD on the workers.
absl::Status CheckModeFitsOptimizer(const ModeConfig& mode, absl::string_view optimizer);
// INVALID_ARGUMENT for a mode other than fedavg while HQ serves SCAFFOLD's
// control variates with its weights (--fedavg_algorithm=scaffold).
absl::Status CheckModeFitsControlVariates(const ModeConfig& mode, bool control_variates);

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_ROUND_POLICY_H_
