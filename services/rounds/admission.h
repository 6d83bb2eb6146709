#ifndef HIPS_SERVICES_ROUNDS_ADMISSION_H_
#define HIPS_SERVICES_ROUNDS_ADMISSION_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "services/types/consistency.h"
#include "services/types/drop_reason.h"

// What both tiers check before a contribution joins a round or a batch: an
// aggregator for a worker's gradient, HQ for an aggregate.

namespace hips {

// A contribution turned away: the reason it is counted under, and the
// status its sender gets.
struct Refusal {
  DropReason reason;
  absl::Status status;
};

// The weights a tier holds: what a contribution's version is judged by.
struct VersionState {
  int64_t version = 0;
  ModeConfig mode;
  // The newest mode switch, or rollback after a divergence: contributions
  // computed before it belong to another line of weights.
  int64_t mode_since = 0;
  bool training_done = false;
};

// Refuses a contribution (`what`: "gradient", "aggregate") of `version`
// once training is done, for a version newer than the tier's, or one
// computed before the newest mode switch; nullopt when it may join.
std::optional<Refusal> CheckVersion(const VersionState& tier, int64_t version,
                                    absl::string_view what);

// Ssp: refuses a contribution computed `staleness` versions before the
// newest version the tier knows of when that is beyond the mode's bound;
// nullopt otherwise (and in the other modes).
std::optional<Refusal> CheckStaleness(const ModeConfig& mode, int64_t version, int64_t staleness,
                                      absl::string_view what);

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_ADMISSION_H_
