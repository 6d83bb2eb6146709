#include "services/types/drop_reason.h"

#include "absl/strings/cord.h"

namespace hips {

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kStaleVersion:
      return "stale_version";
    case DropReason::kFutureVersion:
      return "future_version";
    case DropReason::kRoundClosed:
      return "round_closed";
    case DropReason::kInvalid:
      return "invalid";
    case DropReason::kStalenessExceeded:
      return "staleness_exceeded";
    case DropReason::kModeChanged:
      return "mode_changed";
    case DropReason::kSuperseded:
      return "superseded";
    case DropReason::kTrainingDone:
      return "training_done";
    case DropReason::kUnfinished:
      return "unfinished";
    case DropReason::kOptimizerFailed:
      return "optimizer_failed";
    case DropReason::kShutdown:
      return "shutdown";
    case DropReason::kRepeatedContributor:
      return "repeated_contributor";
    case DropReason::kHqRestarted:
      return "hq_restarted";
    case DropReason::kForbidden:
      return "forbidden";
    case DropReason::kMembershipFull:
      return "membership_full";
    case DropReason::kNotDrawn:
      return "not_drawn";
    case DropReason::kEdgeRetry:
      return "edge_retry";
    case DropReason::kNonFinite:
      return "non_finite";
    case DropReason::kQuarantined:
      return "quarantined";
  }
  return "unknown";
}

const std::vector<DropReason>& AllDropReasons() {
  static const std::vector<DropReason>* const kAll =
      new std::vector<DropReason>{DropReason::kStaleVersion,      DropReason::kFutureVersion,
                                  DropReason::kRoundClosed,       DropReason::kInvalid,
                                  DropReason::kStalenessExceeded, DropReason::kModeChanged,
                                  DropReason::kSuperseded,        DropReason::kTrainingDone,
                                  DropReason::kUnfinished,        DropReason::kOptimizerFailed,
                                  DropReason::kShutdown,          DropReason::kRepeatedContributor,
                                  DropReason::kHqRestarted,       DropReason::kForbidden,
                                  DropReason::kMembershipFull,    DropReason::kNotDrawn,
                                  DropReason::kEdgeRetry,         DropReason::kNonFinite,
                                  DropReason::kQuarantined};
  return *kAll;
}

namespace {
constexpr char kNonFinitePayload[] = "type.hips.dev/non_finite";
}  // namespace

absl::Status NonFiniteError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kNonFinitePayload, absl::Cord("1"));
  return status;
}

bool IsNonFinite(const absl::Status& status) {
  return status.GetPayload(kNonFinitePayload).has_value();
}

DropReason RefusalReason(const absl::Status& status, DropReason otherwise) {
  return IsNonFinite(status) ? DropReason::kNonFinite : otherwise;
}

std::vector<std::string> AllDropReasonNames() {
  std::vector<std::string> names;
  for (DropReason reason : AllDropReasons()) names.emplace_back(DropReasonName(reason));
  return names;
}

}  // namespace hips
