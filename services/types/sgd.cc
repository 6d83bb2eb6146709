#include "services/types/sgd.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace hips {

absl::Status ValidateLocalSgd(const LocalSgd& s) {
  // (0 is a cosine schedule's last rate.)
  if (!(std::isfinite(s.lr) && s.lr >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("local learning rate must be >= 0, got ", s.lr));
  }
  if (!(s.momentum >= 0 && s.momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local momentum must be in [0, 1), got ", s.momentum));
  }
  if (!(std::isfinite(s.weight_decay) && s.weight_decay >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local weight decay must be >= 0, got ", s.weight_decay));
  }
  if (s.nesterov && s.momentum == 0) {
    return absl::InvalidArgumentError("local nesterov needs a positive momentum");
  }
  return absl::OkStatus();
}

}  // namespace hips
