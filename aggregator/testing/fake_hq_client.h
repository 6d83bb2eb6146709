#ifndef HIPS_AGGREGATOR_TESTING_FAKE_HQ_CLIENT_H_
#define HIPS_AGGREGATOR_TESTING_FAKE_HQ_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "aggregator/hq_client.h"
#include "services/core/weights_board.h"

namespace hips {

// HQ in memory, for tests of what talks to it (HqLink) and for benchmarks
// of the hop below it: the weights the test publishes, pushes answered by a
// handler (by default acknowledged at once, with the newest version
// published), heartbeats answered by another (by default a lease of a
// minute). Every push and heartbeat is recorded. CancelCalls ends the
// current and every later call with CANCELLED, as the gRPC client does.
// Thread-safe.
class FakeHqClient final : public HqClient {
 public:
  using PushHandler = std::function<absl::StatusOr<PushResult>(const AggregatePush&)>;
  using HeartbeatHandler =
      std::function<absl::StatusOr<HeartbeatAnswer>(const HeartbeatRequestData&)>;

  // `keep_pushes` false: pushes are counted, not kept (a benchmark's
  // aggregates would pile up, 40 MB each).
  explicit FakeHqClient(bool keep_pushes = true) : keep_pushes_(keep_pushes) {}

  void Publish(std::shared_ptr<const WeightsSnapshot> snapshot) { board_.Publish(snapshot); }
  // Handlers run on the calling thread, without the fake's lock.
  void SetPushHandler(PushHandler handler);
  void SetHeartbeatHandler(HeartbeatHandler handler);

  // What was pushed (sums included; nothing without keep_pushes) and
  // heartbeat so far, in order; how many pushes there were.
  std::vector<AggregatePush> pushes() const;
  size_t push_count() const;
  std::vector<HeartbeatRequestData> heartbeats() const;
  // Wait until that many pushes (heartbeats) arrived; false if
  // `timeout` passed first.
  bool WaitForPushes(size_t n, absl::Duration timeout) const;
  bool WaitForHeartbeats(size_t n, absl::Duration timeout) const;
  // Waits until CancelCalls (for a handler standing in for a call that
  // hangs until its caller gives up); false if `timeout` passed first.
  bool WaitUntilCancelled(absl::Duration timeout) const;

  absl::StatusOr<PushResult> PushAggregate(const AggregatePush& aggregate) override;
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline,
      std::shared_ptr<const WeightsSnapshot> held) override;
  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                            absl::Time deadline) override;
  void CancelCalls() override;

 private:
  const bool keep_pushes_;
  WeightsBoard board_;
  mutable absl::Mutex mu_;
  size_t push_count_ ABSL_GUARDED_BY(mu_) = 0;
  PushHandler push_handler_ ABSL_GUARDED_BY(mu_);
  HeartbeatHandler heartbeat_handler_ ABSL_GUARDED_BY(mu_);
  std::vector<AggregatePush> pushes_ ABSL_GUARDED_BY(mu_);
  std::vector<HeartbeatRequestData> heartbeats_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// A snapshot of `floats` zeros, version `version`, in `mode`, of HQ
// incarnation 1 (tests and benchmarks).
std::shared_ptr<WeightsSnapshot> ZeroWeights(int64_t floats, int64_t version = 0,
                                             ModeConfig mode = {});

}  // namespace hips

#endif  // HIPS_AGGREGATOR_TESTING_FAKE_HQ_CLIENT_H_
