#ifndef HIPS_SERVICES_TYPES_DIVERGENCE_H_
#define HIPS_SERVICES_TYPES_DIVERGENCE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// What HQ does when a run diverges (docs/faults.md, "Divergence"): a run
// diverges when HQ would apply a non-finite step or publish non-finite
// weights, or when every live worker's gradient since the last finite update
// was refused as non-finite (NaN, infinity, a sum that would overflow). HQ
// never applies or publishes such values; it stops the run, or rolls back to
// the newest healthy weights with a smaller learning rate.

namespace hips {

enum class OnDivergence { kStop, kRollback };
// "stop", "rollback"; INVALID_ARGUMENT naming --on_divergence otherwise.
absl::StatusOr<OnDivergence> OnDivergenceFromName(absl::string_view name);
absl::string_view OnDivergenceName(OnDivergence on);

struct DivergenceOptions {
  OnDivergence on = OnDivergence::kStop;
  // kRollback: the learning rate is multiplied by this at each rollback,
  // at most `max_rollbacks` times; the next divergence then stops the run.
  double lr_factor = 0.5;
  int max_rollbacks = 3;
};
// INVALID_ARGUMENT naming the flag: --divergence_lr_factor in (0, 1),
// --max_rollbacks in [0, 1000].
absl::Status ValidateDivergenceOptions(const DivergenceOptions& options);

// Where a run diverged (-1: it did not), and why.
struct Divergence {
  int64_t version = -1;
  std::string reason;
};
// "diverged at version V: <reason>", the line the log, `hips status` and
// hips local print.
std::string DescribeDivergence(const Divergence& d);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_DIVERGENCE_H_
