#include "services/rounds/admission.h"

#include "absl/strings/str_cat.h"

namespace hips {

std::optional<Refusal> CheckVersion(const VersionState& tier, int64_t version,
                                    absl::string_view what) {
  if (tier.training_done) {
    return Refusal{DropReason::kTrainingDone, absl::FailedPreconditionError(absl::StrCat(
                                                  "training ended at version ", tier.version))};
  }
  if (version > tier.version) {
    return Refusal{DropReason::kFutureVersion,
                   absl::FailedPreconditionError(absl::StrCat(
                       what, " of version ", version, " but the newest here is ", tier.version))};
  }
  if (version < tier.mode_since) {
    return Refusal{
        DropReason::kModeChanged,
        absl::FailedPreconditionError(absl::StrCat(
            what, " of version ", version, " predates version ", tier.mode_since,
            ", where the run switched to ", DescribeMode(tier.mode), " or rolled back"))};
  }
  return std::nullopt;
}

std::optional<Refusal> CheckStaleness(const ModeConfig& mode, int64_t version, int64_t staleness,
                                      absl::string_view what) {
  if (mode.mode != Mode::kSsp || staleness <= mode.staleness) return std::nullopt;
  return Refusal{DropReason::kStalenessExceeded,
                 absl::FailedPreconditionError(
                     absl::StrCat(what, " of version ", version, " is ", staleness,
                                  " versions stale; the bound is ", mode.staleness))};
}

}  // namespace hips
