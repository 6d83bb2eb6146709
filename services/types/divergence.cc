#include "services/types/divergence.h"

#include "absl/strings/str_cat.h"

namespace hips {

absl::StatusOr<OnDivergence> OnDivergenceFromName(absl::string_view name) {
  if (name == "stop") return OnDivergence::kStop;
  if (name == "rollback") return OnDivergence::kRollback;
  return absl::InvalidArgumentError(
      absl::StrCat("--on_divergence=", name, ": expected stop or rollback"));
}

absl::string_view OnDivergenceName(OnDivergence on) {
  return on == OnDivergence::kStop ? "stop" : "rollback";
}

absl::Status ValidateDivergenceOptions(const DivergenceOptions& o) {
  if (!(o.lr_factor > 0 && o.lr_factor < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--divergence_lr_factor must be in (0, 1), got ", o.lr_factor));
  }
  if (o.max_rollbacks < 0 || o.max_rollbacks > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_rollbacks must be in [0, 1000], got ", o.max_rollbacks));
  }
  return absl::OkStatus();
}

std::string DescribeDivergence(const Divergence& d) {
  return absl::StrCat("diverged at version ", d.version, ": ", d.reason);
}

}  // namespace hips
