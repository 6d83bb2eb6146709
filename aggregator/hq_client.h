#ifndef HIPS_AGGREGATOR_HQ_CLIENT_H_
#define HIPS_AGGREGATOR_HQ_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/types/payloads.h"

namespace hips {

// What an aggregator needs from HQ. Implementations are thread-safe.
class HqClient {
 public:
  virtual ~HqClient() = default;

  virtual absl::StatusOr<PushResult> PushAggregate(const AggregatePush& aggregate) = 0;

  // Long poll for weights of version >= min_version (or of an HQ
  // incarnation other than `held`'s, none held: any); DEADLINE_EXCEEDED
  // when none arrived by `deadline`. `held` is the newest weights this
  // aggregator got from HQ (null: none): HQ may answer with a delta
  // against them (--weights_compression), which comes back applied.
  virtual absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline, std::shared_ptr<const WeightsSnapshot> held) = 0;
  virtual absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                                    absl::Time deadline) = 0;

  // Cancels the calls in flight and every later one (they fail with
  // CANCELLED): for shutting down without waiting out a long poll.
  virtual void CancelCalls() = 0;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_HQ_CLIENT_H_
