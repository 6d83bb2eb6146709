#ifndef HIPS_SERVICES_TYPES_DROP_REASON_H_
#define HIPS_SERVICES_TYPES_DROP_REASON_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hips {

// Why a gradient was not applied; every tier counts each (docs/modes.md).
enum class DropReason {
  kStaleVersion,         // sync: computed on an older version than the open round
  kFutureVersion,        // claims a version this tier has not seen yet
  kRoundClosed,          // sync: its round already closed (complete or at its deadline)
  kInvalid,              // wrong size, bad sample count, a malformed header
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
  kNonFinite,            // a NaN or infinite value or loss, or a sum that would overflow: the
                         // sign of a diverging run (docs/faults.md, "Divergence")
  kQuarantined,          // from a member put out for a while (--quarantine_ms: refused or left
                         // out again and again; docs/security.md)
};
absl::string_view DropReasonName(DropReason reason);
// Every DropReason, in declaration order (metrics report each, 0 included).
const std::vector<DropReason>& AllDropReasons();
// Their names.
std::vector<std::string> AllDropReasonNames();

// INVALID_ARGUMENT for values (or a loss) that are not finite, or whose sum
// would not be, marked so that IsNonFinite tells it from other bad input
// (a payload on the status; it does not travel over gRPC).
absl::Status NonFiniteError(absl::string_view message);
bool IsNonFinite(const absl::Status& status);
// The reason a refusal with `status` is counted under: kNonFinite for a
// NonFiniteError, `otherwise` for anything else.
DropReason RefusalReason(const absl::Status& status, DropReason otherwise = DropReason::kInvalid);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_DROP_REASON_H_
