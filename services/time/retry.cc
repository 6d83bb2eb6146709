#include "services/time/retry.h"

#include <algorithm>

namespace hips {

bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsAborted(s) ||
         absl::IsResourceExhausted(s) || absl::IsCancelled(s) || absl::IsInternal(s) ||
         absl::IsUnknown(s);
}

absl::Duration Backoff::Next() {
  const double fraction = absl::Uniform(gen_, 0.0, 1.0);
  const absl::Duration wait = bound_ * fraction;
  bound_ = std::min(bound_ * 2, max_);
  return wait;
}

}  // namespace hips
