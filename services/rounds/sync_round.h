#ifndef HIPS_SERVICES_ROUNDS_SYNC_ROUND_H_
#define HIPS_SERVICES_ROUNDS_SYNC_ROUND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include <memory>

#include "services/numeric/gradient_accumulator.h"
#include "services/numeric/robust_mean.h"
#include "services/rounds/contribution.h"

namespace hips {

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
// (a retry whose ack was lost). With a robust combination (--robust) it
// holds each contribution until it closes and the accumulator then holds
// their combination (robust_mean.h), not their sum. Not thread-safe: the
// owner serializes access.
class SyncRound {
 public:
  enum class State { kIdle, kOpen, kClosed };
  enum class AddOutcome { kAccepted, kDuplicate };

  // `quorum` >= 1 (and <= expected if expected > 0); an infinite `grace`
  // waits for the round to be complete.
  SyncRound(size_t num_floats, int expected_contributions, int quorum,
            absl::Duration grace = absl::InfiniteDuration(), RobustMean robust = RobustMean());
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
  // The round's sum (with a robust combination: once it closed).
  const GradientAccumulator& accumulator() const { return accumulator_; }
  GradientAccumulator* mutable_accumulator() { return &accumulator_; }
  // With a robust combination, the senders the closed round's combination
  // left out as outliers, and the one it held down to the other's norm by
  // far in a round of 2 (robust_mean.h), once.
  std::vector<std::string> TakeTrimmed() { return std::move(trimmed_); }
  std::vector<std::string> TakeHeldDown() { return std::move(held_down_); }

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
  // --robust: the contributions held until the round closes, by sender.
  std::unique_ptr<RobustCombiner> combiner_;
  std::vector<std::string> held_;
  std::vector<std::string> trimmed_;
  std::vector<std::string> held_down_;

  // Open -> Closed (combining what a robust round held).
  void Seal();
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_SYNC_ROUND_H_
