#ifndef HIPS_AGGREGATOR_HQ_CLIENT_H_
#define HIPS_AGGREGATOR_HQ_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/core/payloads.h"

namespace hips {

// What an aggregator needs from HQ. Implementations are thread-safe.
class HqClient {
 public:
  virtual ~HqClient() = default;

  virtual absl::StatusOr<PushResult> PushAggregate(const AggregatePush& aggregate) = 0;

  // Long poll for weights of version >= min_version (or of an HQ
  // incarnation other than `incarnation`, 0: none yet); DEADLINE_EXCEEDED
  // when none arrived by `deadline`.
  virtual absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline, int64_t incarnation) = 0;
  virtual absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                                    absl::Time deadline) = 0;

  // Cancels the calls in flight and every later one (they fail with
  // CANCELLED): for shutting down without waiting out a long poll.
  virtual void CancelCalls() = 0;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_HQ_CLIENT_H_
