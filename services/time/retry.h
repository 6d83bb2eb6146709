#ifndef HIPS_SERVICES_TIME_RETRY_H_
#define HIPS_SERVICES_TIME_RETRY_H_

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace hips {

// Whether a failed call to a peer is worth repeating: the peer is down,
// restarting, overloaded or the call timed out. Refusals of the request
// itself (INVALID_ARGUMENT, FAILED_PRECONDITION, ...) are not.
bool IsRetryable(const absl::Status& status);

// Exponential backoff with full jitter: each wait is uniform in [0, b) with b
// doubling from `min` up to `max`, so that many clients do not retry in
// lock step. Not thread-safe.
class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(max), bound_(min) {}

  absl::Duration Next();
  void Reset() { bound_ = min_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration bound_;
  absl::BitGen gen_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TIME_RETRY_H_
