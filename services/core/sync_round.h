#ifndef HIPS_SERVICES_CORE_SYNC_ROUND_H_
#define HIPS_SERVICES_CORE_SYNC_ROUND_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/core/gradient_accumulator.h"

namespace hips {

// One contribution to a round: a worker's gradient or an aggregator's sum.
struct Contribution {
  std::string sender;
  int64_t version = 0;
  int64_t samples = 0;
  double loss_sum = 0.0;
  int64_t contributors = 1;
  // Factor applied to `values` before summing (n_i for a worker's mean
  // gradient, 1 for an already weighted sum).
  float scale = 1.0f;
  absl::Span<const float> values;
};

// Why a contribution was refused; the owner counts each.
enum class DropReason {
  kStaleVersion,    // computed on an older version than the open round
  kFutureVersion,   // claims a version this tier has not seen yet
  kRoundClosed,     // round already has every expected contribution
  kInvalid,         // wrong size, bad sample count, non-finite values
};
absl::string_view DropReasonName(DropReason reason);

// The sync-mode state machine of one tier for one version at a time:
//
//   Idle --Open(v)--> Open(v) --last expected Add--> Closed(v) --Open(v+1)--> ...
//
// A round accepts one contribution per sender; a repeat from the same sender
// for the same version is acknowledged as a duplicate and not summed, also
// when it arrives after the next round opened (a retry whose ack was lost).
// Not thread-safe: the owner serializes access.
class SyncRound {
 public:
  enum class State { kIdle, kOpen, kClosed };
  enum class AddOutcome { kAccepted, kDuplicate };

  SyncRound(size_t num_floats, int expected_contributions);

  // Starts collecting for `version`, discarding whatever the previous round
  // held. The caller opens versions in increasing order.
  void Open(int64_t version);

  // Adds `c` to the open round. A refusal is FAILED_PRECONDITION (version or
  // closed-round problems) or INVALID_ARGUMENT (bad payload), with its reason
  // stored in `*reason`; nothing is summed then.
  absl::StatusOr<AddOutcome> Add(const Contribution& c, DropReason* reason);

  State state() const { return state_; }
  int64_t version() const { return version_; }
  int expected() const { return expected_; }
  int received() const { return static_cast<int>(senders_.size()); }
  const GradientAccumulator& accumulator() const { return accumulator_; }

 private:
  const int expected_;
  State state_ = State::kIdle;
  int64_t version_ = -1;
  absl::flat_hash_set<std::string> senders_;
  int64_t previous_version_ = -1;
  absl::flat_hash_set<std::string> previous_senders_;
  GradientAccumulator accumulator_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_SYNC_ROUND_H_
