#ifndef HIPS_SERVICES_CORE_SYNC_ROUND_H_
#define HIPS_SERVICES_CORE_SYNC_ROUND_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/core/compression.h"
#include "services/core/float_pieces.h"
#include "services/core/gradient_accumulator.h"

namespace hips {

// One contribution to a round: a worker's gradient or an aggregator's sum.
struct Contribution {
  std::string sender;
  // The worker gradients inside (an aggregate's contributors); empty means
  // just the sender's own. A round holds each worker's gradient once.
  std::vector<std::string> members;
  // False for a retried worker gradient that an aggregator forwards alone:
  // it covers its worker but does not end the aggregator's part of the
  // round (its regular aggregate still comes).
  bool completes_sender = true;
  int64_t version = 0;
  int64_t samples = 0;
  double loss_sum = 0.0;
  // 0: nothing to sum, the contribution only records that `members` are
  // covered (their gradients went on alone) and, with completes_sender,
  // that the sender is done.
  int64_t contributors = 1;
  // Factor applied to `values` before summing (n_i for a worker's mean
  // gradient, 1 for an already weighted sum).
  float scale = 1.0f;
  // The values as they arrived (straight out of a stream's slices, in the
  // sender's encoding).
  EncodedValues values;
};

// Why a gradient was not applied; every tier counts each (docs/modes.md).
enum class DropReason {
  kStaleVersion,         // sync: computed on an older version than the open round
  kFutureVersion,        // claims a version this tier has not seen yet
  kRoundClosed,          // sync: its round already closed (complete or at its deadline)
  kInvalid,              // wrong size, bad sample count, non-finite values
  kStalenessExceeded,    // ssp: staleness above the bound
  kModeChanged,          // computed under a mode that has since been switched
  kSuperseded,           // sync: its round was left open when a newer version arrived
  kTrainingDone,         // arrived after the training budget was reached
  kUnfinished,           // accepted, but training ended before it was sent on
  kOptimizerFailed,      // HQ's optimizer step failed
  kShutdown,             // still waiting in a tier that shut down
  kRepeatedContributor,  // an aggregate with a worker gradient already applied (the
                         // gradient was retried through another aggregator)
  kHqRestarted,          // computed on weights of HQ's previous incarnation
  kForbidden,            // pushed under another member's id (mTLS: docs/security.md)
  kMembershipFull,       // a new member beyond --max_workers / --max_aggregators
  kNotDrawn,             // fedavg: from a worker not drawn for the round (--participation)
  kEdgeRetry,            // fedavg with edge rounds: a retry new to this aggregator (its first
                         // attempt may be in another copy already)
};
absl::string_view DropReasonName(DropReason reason);
// Every DropReason, in declaration order (metrics report each, 0 included).
const std::vector<DropReason>& AllDropReasons();
// Their names.
std::vector<std::string> AllDropReasonNames();

// Checks what every tier checks before summing a contribution of a model of
// `num_floats` floats: sender, counts, size, finite values.
// `check_values` false skips the finiteness of the values, for a caller
// that adds them to a GradientAccumulator next (its Add checks them in the
// same read it needs anyway).
absl::Status ValidateContribution(const Contribution& c, size_t num_floats,
                                  bool check_values = true);

// The round state machine of one tier for one version:
//
//   Idle --Open(v)--> Open(v) --complete, or quorum and deadline--> Closed(v)
//        --Open(v+1)--> ...
//
// It closes when `expected` senders are done (expected > 0; with 0
// the owner decides when it is complete, from its membership, and calls
// Close), or once `grace` has passed since its first contribution and at
// least `quorum` arrived (a backup-worker round). A round holds each worker's
// gradient once; a repeat for the same version is acknowledged as a
// duplicate and not summed, also when it arrives after the next round opened
// (a retry whose ack was lost). Not thread-safe: the owner serializes access.
class SyncRound {
 public:
  enum class State { kIdle, kOpen, kClosed };
  enum class AddOutcome { kAccepted, kDuplicate };

  // `quorum` >= 1 (and <= expected if expected > 0); an infinite `grace`
  // waits for the round to be complete.
  SyncRound(size_t num_floats, int expected_contributions, int quorum,
            absl::Duration grace = absl::InfiniteDuration());
  SyncRound(size_t num_floats, int expected_contributions)
      : SyncRound(num_floats, expected_contributions, expected_contributions) {}

  // Starts collecting for `version`, discarding whatever the previous round
  // held. The caller opens versions in increasing order.
  void Open(int64_t version);

  // Adds `c` to the open round at time `now`. A refusal is
  // FAILED_PRECONDITION (version or closed-round problems) or
  // INVALID_ARGUMENT (bad payload), with its reason stored in `*reason`;
  // nothing is summed then. The round closes in Add only through the
  // contribution Add accepts (the last expected one, or a quorum after the
  // deadline): the owner, which must send a round on when it closes, calls
  // CloseIfDue before Add so that a late arrival never closes a round behind
  // its back.
  absl::StatusOr<AddOutcome> Add(const Contribution& c, DropReason* reason,
                                 absl::Time now = absl::Now());

  // Closes an open round (the owner found it complete).
  void Close();
  // Records that `sender` is done with round `version` without adding a
  // gradient (its aggregate was a duplicate or refused). No-op for another
  // version.
  void MarkSenderDone(const std::string& sender, int64_t version);

  // When an open round that has its quorum closes at the latest;
  // InfiniteFuture without a quorum or a deadline. (A round that gets its
  // quorum after the deadline closes in that Add.)
  absl::Time CloseAt() const;
  // Closes the round if its deadline passed with a quorum. True if it did.
  bool CloseIfDue(absl::Time now);

  bool HasSender(const std::string& sender) const { return senders_.contains(sender); }
  // Senders done with this round, and the workers whose gradients it holds.
  const absl::flat_hash_set<std::string>& senders() const { return senders_; }
  const absl::flat_hash_set<std::string>& covered() const { return covered_; }
  State state() const { return state_; }
  int64_t version() const { return version_; }
  int expected() const { return expected_; }
  // Senders done with the round (what `expected` and `quorum` count).
  int received() const { return static_cast<int>(senders_.size()); }
  const GradientAccumulator& accumulator() const { return accumulator_; }
  GradientAccumulator* mutable_accumulator() { return &accumulator_; }

 private:
  const int expected_;
  const int quorum_;
  const absl::Duration grace_;
  State state_ = State::kIdle;
  int64_t version_ = -1;
  absl::Time first_arrival_ = absl::InfiniteFuture();
  absl::flat_hash_set<std::string> senders_;
  absl::flat_hash_set<std::string> covered_;
  int64_t previous_version_ = -1;
  absl::flat_hash_set<std::string> previous_covered_;
  GradientAccumulator accumulator_;
};

// The deadline timer's pass over one tier's open round at `now` (both tiers
// run it): `complete` first (it closes and sends on a round that has
// everyone it waits for), then, if the round is still open and its deadline
// passed with a quorum, the round is closed and `closed` sends it on.
// `what` names the contributions in the log ("gradients", "aggregates").
void CloseRoundIfDue(SyncRound* round, absl::Time now, absl::string_view what,
                     const std::function<void()>& complete, const std::function<void()>& closed);

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_SYNC_ROUND_H_
