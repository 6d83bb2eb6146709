#include "aggregator/testing/fake_hq_client.h"

#include <utility>

namespace hips {

void FakeHqClient::SetPushHandler(PushHandler handler) {
  absl::MutexLock lock(&mu_);
  push_handler_ = std::move(handler);
}

void FakeHqClient::SetHeartbeatHandler(HeartbeatHandler handler) {
  absl::MutexLock lock(&mu_);
  heartbeat_handler_ = std::move(handler);
}

std::vector<AggregatePush> FakeHqClient::pushes() const {
  absl::MutexLock lock(&mu_);
  return pushes_;
}

size_t FakeHqClient::push_count() const {
  absl::MutexLock lock(&mu_);
  return push_count_;
}

std::vector<HeartbeatRequestData> FakeHqClient::heartbeats() const {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}

bool FakeHqClient::WaitForPushes(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return push_count_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeHqClient::WaitForHeartbeats(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return heartbeats_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeHqClient::WaitUntilCancelled(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&cancelled_), timeout);
}

absl::StatusOr<PushResult> FakeHqClient::PushAggregate(const AggregatePush& aggregate) {
  PushHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("cancelled");
    ++push_count_;
    if (keep_pushes_) pushes_.push_back(aggregate);
    handler = push_handler_;
  }
  if (handler) return handler(aggregate);
  std::shared_ptr<const WeightsSnapshot> latest = board_.Latest();
  return PushResult{aggregate.version, false, latest == nullptr ? 0 : latest->version};
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> FakeHqClient::PullWeights(
    int64_t min_version, absl::Time deadline, std::shared_ptr<const WeightsSnapshot> held) {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("cancelled");
  }
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights =
      board_.WaitFor(min_version, deadline, held == nullptr ? 0 : held->incarnation);
  // CancelCalls shuts the board down: its waits end UNAVAILABLE.
  if (absl::IsUnavailable(weights.status())) return absl::CancelledError("cancelled");
  return weights;
}

absl::StatusOr<HeartbeatAnswer> FakeHqClient::Heartbeat(const HeartbeatRequestData& heartbeat,
                                                        absl::Time deadline) {
  HeartbeatHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return absl::CancelledError("cancelled");
    heartbeats_.push_back(heartbeat);
    handler = heartbeat_handler_;
  }
  if (handler) return handler(heartbeat);
  HeartbeatAnswer answer;
  answer.lease = absl::Minutes(1);
  std::shared_ptr<const WeightsSnapshot> latest = board_.Latest();
  answer.version = latest == nullptr ? -1 : latest->version;
  return answer;
}

void FakeHqClient::CancelCalls() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  board_.Shutdown();
}

std::shared_ptr<WeightsSnapshot> ZeroWeights(int64_t floats, int64_t version, ModeConfig mode) {
  auto snapshot = std::make_shared<WeightsSnapshot>();
  snapshot->version = version;
  snapshot->layout = *ModelLayout::Create({TensorSpec{"w", {floats}}});
  snapshot->weights.assign(static_cast<size_t>(floats), 0.0f);
  snapshot->mode = mode;
  snapshot->incarnation = 1;
  return snapshot;
}

}  // namespace hips
