#include "worker/testing/fake_aggregator_client.h"

#include <algorithm>
#include <utility>

namespace hips {

void FakeAggregatorClient::SetPushHandler(PushHandler handler) {
  absl::MutexLock lock(&mu_);
  push_handler_ = std::move(handler);
}

void FakeAggregatorClient::SetHeartbeatHandler(HeartbeatHandler handler) {
  absl::MutexLock lock(&mu_);
  heartbeat_handler_ = std::move(handler);
}

void FakeAggregatorClient::SetReachable(bool reachable) {
  absl::MutexLock lock(&mu_);
  reachable_ = reachable;
}

std::vector<GradientPush> FakeAggregatorClient::pushes() const {
  absl::MutexLock lock(&mu_);
  return pushes_;
}

std::vector<HeartbeatRequestData> FakeAggregatorClient::heartbeats() const {
  absl::MutexLock lock(&mu_);
  return heartbeats_;
}

bool FakeAggregatorClient::WaitForPushes(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pushes_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeAggregatorClient::WaitForHeartbeats(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return heartbeats_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

absl::Status FakeAggregatorClient::Gate() const {
  if (cancelled_) return absl::CancelledError("cancelled");
  if (!reachable_) return absl::UnavailableError("connection refused");
  return absl::OkStatus();
}

absl::StatusOr<PushResult> FakeAggregatorClient::PushGradient(const GradientPush& gradient) {
  PushHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Gate(); !s.ok()) return s;
    pushes_.push_back(gradient);
    handler = push_handler_;
  }
  if (handler) return handler(gradient);
  std::shared_ptr<const WeightsSnapshot> latest = board_.Latest();
  return PushResult{gradient.version, false, latest == nullptr ? 0 : latest->version};
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> FakeAggregatorClient::PullWeights(
    int64_t min_version, absl::Time deadline, bool no_wait, int64_t incarnation,
    EdgePosition edge) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Gate(); !s.ok()) return s;
  }
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights =
      board_.WaitFor(min_version, no_wait ? absl::Now() : deadline, incarnation, edge);
  // CancelCalls shuts the board down: its waits end UNAVAILABLE.
  if (absl::IsUnavailable(weights.status())) return absl::CancelledError("cancelled");
  return weights;
}

absl::StatusOr<HeartbeatAnswer> FakeAggregatorClient::Heartbeat(
    const HeartbeatRequestData& heartbeat, absl::Time deadline) {
  HeartbeatHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Gate(); !s.ok()) return s;
    heartbeats_.push_back(heartbeat);
    handler = heartbeat_handler_;
  }
  if (handler) return handler(heartbeat);
  HeartbeatAnswer answer;
  answer.lease = lease_;
  std::shared_ptr<const WeightsSnapshot> latest = board_.Latest();
  answer.version = latest == nullptr ? -1 : latest->version;
  return answer;
}

void FakeAggregatorClient::CancelCalls() {
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  board_.Shutdown();
}

FakeModel::FakeModel(int64_t num_floats, Seeds* seeds)
    : layout_(*ModelLayout::Create({TensorSpec{"w", {num_floats}}})),
      weights_(static_cast<size_t>(num_floats), 0.0f),
      seeds_(seeds) {}

void FakeModel::SeedNextGradient(uint64_t seed) {
  if (seeds_ == nullptr) return;
  absl::MutexLock lock(&seeds_->mu);
  seeds_->seeds.push_back(seed);
}

void FakeModel::GetWeights(absl::Span<float> out) const {
  std::copy(weights_.begin(), weights_.end(), out.begin());
}

absl::Status FakeModel::SetWeights(absl::Span<const float> weights) {
  if (weights.size() != weights_.size()) return absl::InvalidArgumentError("wrong size");
  weights_.assign(weights.begin(), weights.end());
  return absl::OkStatus();
}

absl::StatusOr<double> FakeModel::ComputeGradient(absl::Span<const float> features,
                                                  absl::Span<const int64_t> labels,
                                                  absl::Span<const float> /*targets*/,
                                                  absl::Span<float> grad_out) {
  float label_sum = 0;
  for (int64_t label : labels) label_sum += static_cast<float>(label);
  std::fill(grad_out.begin(), grad_out.end(), label_sum + weights_[0]);
  return static_cast<double>(labels.size());
}

absl::StatusOr<EvalMetrics> FakeModel::Evaluate(const Dataset& data) {
  EvalMetrics m;
  m.examples = data.num_examples();
  return m;
}

}  // namespace hips
