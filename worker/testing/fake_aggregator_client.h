#ifndef HIPS_WORKER_TESTING_FAKE_AGGREGATOR_CLIENT_H_
#define HIPS_WORKER_TESTING_FAKE_AGGREGATOR_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/core/weights_board.h"
#include "services/data/dataset.h"
#include "services/models/model.h"
#include "worker/aggregator_client.h"

namespace hips {

// An aggregator in memory, for the worker's tests: weights the test
// publishes, pushes answered by a handler (by default acknowledged at once),
// heartbeats answered with a lease (or by a handler). SetReachable(false)
// makes it a dead aggregator: every call fails with UNAVAILABLE at once.
// Pushes and heartbeats are recorded. CancelCalls ends the current and
// every later call with CANCELLED, as the gRPC client does. Thread-safe.
class FakeAggregatorClient final : public AggregatorClient {
 public:
  using PushHandler = std::function<absl::StatusOr<PushResult>(const GradientPush&)>;
  using HeartbeatHandler =
      std::function<absl::StatusOr<HeartbeatAnswer>(const HeartbeatRequestData&)>;

  // `lease`: what heartbeats answer by default.
  explicit FakeAggregatorClient(absl::Duration lease = absl::Milliseconds(200)) : lease_(lease) {}

  void Publish(std::shared_ptr<const WeightsSnapshot> snapshot) { board_.Publish(snapshot); }
  // Handlers run on the calling thread, without the fake's lock.
  void SetPushHandler(PushHandler handler);
  void SetHeartbeatHandler(HeartbeatHandler handler);
  void SetReachable(bool reachable);

  // What reached it so far, in order.
  std::vector<GradientPush> pushes() const;
  std::vector<HeartbeatRequestData> heartbeats() const;
  // Wait until that many were recorded; false if `timeout` passed first.
  bool WaitForPushes(size_t n, absl::Duration timeout) const;
  bool WaitForHeartbeats(size_t n, absl::Duration timeout) const;

  absl::StatusOr<PushResult> PushGradient(const GradientPush& gradient) override;
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(int64_t min_version,
                                                                     absl::Time deadline,
                                                                     bool no_wait,
                                                                     int64_t incarnation,
                                                                     EdgePosition edge) override;
  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                            absl::Time deadline) override;
  void CancelInFlight() override {}  // its calls never hang but in a long poll
  void CancelCalls() override;

 private:
  // UNAVAILABLE or CANCELLED when calls cannot go through now.
  absl::Status Gate() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration lease_;
  WeightsBoard board_;
  mutable absl::Mutex mu_;
  PushHandler push_handler_ ABSL_GUARDED_BY(mu_);
  HeartbeatHandler heartbeat_handler_ ABSL_GUARDED_BY(mu_);
  bool reachable_ ABSL_GUARDED_BY(mu_) = true;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<GradientPush> pushes_ ABSL_GUARDED_BY(mu_);
  std::vector<HeartbeatRequestData> heartbeats_ ABSL_GUARDED_BY(mu_);
};

// A model of `num_floats` weights ("w") with a gradient a test can predict:
// every entry of the gradient of a batch is (the sum of its labels) +
// (the first weight), so it says which batch it came from and which weights
// it was computed on. The loss of each example is 1. Not thread-safe.
class FakeModel final : public Model {
 public:
  // `seeds` (may be null) records every SeedNextGradient, in order; it is
  // read by the test while the worker's thread writes it.
  struct Seeds {
    absl::Mutex mu;
    std::vector<uint64_t> seeds ABSL_GUARDED_BY(mu);
  };
  explicit FakeModel(int64_t num_floats, Seeds* seeds = nullptr);
  void SeedNextGradient(uint64_t seed) override;

  const ModelLayout& layout() const override { return layout_; }
  void GetWeights(absl::Span<float> out) const override;
  absl::Status SetWeights(absl::Span<const float> weights) override;
  using Model::ComputeGradient;
  absl::StatusOr<double> ComputeGradient(absl::Span<const float> features,
                                         absl::Span<const int64_t> labels,
                                         absl::Span<const float> targets,
                                         absl::Span<float> grad_out) override;
  absl::StatusOr<EvalMetrics> Evaluate(const Dataset& data) override;

 private:
  ModelLayout layout_;
  std::vector<float> weights_;
  Seeds* const seeds_;
};

}  // namespace hips

#endif  // HIPS_WORKER_TESTING_FAKE_AGGREGATOR_CLIENT_H_
