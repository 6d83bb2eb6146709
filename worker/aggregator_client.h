#ifndef HIPS_WORKER_AGGREGATOR_CLIENT_H_
#define HIPS_WORKER_AGGREGATOR_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/types/payloads.h"

namespace hips {

// What a worker needs from its aggregator. Implementations are thread-safe.
class AggregatorClient {
 public:
  virtual ~AggregatorClient() = default;

  virtual absl::StatusOr<PushResult> PushGradient(const GradientPush& gradient) = 0;

  // Long poll for weights of version >= min_version; DEADLINE_EXCEEDED when
  // none arrived by `deadline`, or at once when `no_wait` and the
  // aggregator has nothing that new.
  // Weights of another HQ incarnation than `incarnation` (0: none yet) are
  // returned at once, whatever their version. `edge`: with min_version,
  // the oldest (version, edge round) wanted, and the caller's edge epoch
  // (fedavg with edge rounds: WeightsBoard::WaitAsync).
  virtual absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline, bool no_wait, int64_t incarnation,
      EdgePosition edge = {}) = 0;
  virtual absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                                    absl::Time deadline) = 0;
  // Cancels the calls in flight (they fail with CANCELLED); later calls go
  // ahead. For failing over from an aggregator that stopped answering.
  virtual void CancelInFlight() = 0;

  // Cancels the calls in flight and every later one (they fail with
  // CANCELLED): for shutting down without waiting out a long poll.
  virtual void CancelCalls() = 0;
};

}  // namespace hips

#endif  // HIPS_WORKER_AGGREGATOR_CLIENT_H_
