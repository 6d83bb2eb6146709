#include "aggregator/aggregator.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

absl::Status ValidateAggregatorOptions(const AggregatorOptions& o) {
  if (o.id.empty()) return absl::InvalidArgumentError("aggregator id must not be empty");
  if (o.expected_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("an aggregator needs at least 1 worker, got ", o.expected_workers));
  }
  return absl::OkStatus();
}

Aggregator::Aggregator(AggregatorOptions options) : options_(std::move(options)) {}

absl::StatusOr<PushResult> Aggregator::AcceptGradient(const GradientPush& push) {
  absl::MutexLock lock(&mu_);
  ++counters_.gradients_received;
  if (round_ == nullptr) {
    ++counters_.gradients_dropped[std::string(DropReasonName(DropReason::kFutureVersion))];
    // Not the worker's fault and not final: the worker retries.
    return absl::UnavailableError("this aggregator has no weights from HQ yet");
  }
  Contribution c;
  c.sender = push.sender;
  c.version = push.version;
  c.samples = push.samples;
  c.loss_sum = push.loss_sum;
  c.contributors = 1;
  c.scale = static_cast<float>(push.samples);
  c.values = push.gradient;
  DropReason reason;
  absl::StatusOr<SyncRound::AddOutcome> outcome = round_->Add(c, &reason);
  if (!outcome.ok()) {
    ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
    return outcome.status();
  }
  if (*outcome == SyncRound::AddOutcome::kDuplicate) {
    ++counters_.gradients_duplicate;
    return PushResult{push.version, /*duplicate=*/true};
  }
  ++counters_.gradients_accepted;
  if (round_->state() == SyncRound::State::kClosed) {
    const GradientAccumulator& acc = round_->accumulator();
    AggregatePush out;
    out.aggregator = options_.id;
    out.version = round_->version();
    out.total_samples = acc.total_samples();
    out.contributors = acc.contributors();
    out.loss_sum = acc.loss_sum();
    out.sum.assign(acc.sum().begin(), acc.sum().end());
    outbox_.push_back(std::move(out));
    ++counters_.rounds_closed;
  }
  return PushResult{push.version, /*duplicate=*/false};
}

void Aggregator::RecordRefusal(DropReason reason) {
  absl::MutexLock lock(&mu_);
  ++counters_.gradients_received;
  ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
}

void Aggregator::PublishWeights(std::shared_ptr<const WeightsSnapshot> snapshot) {
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<const WeightsSnapshot> latest = board_.Latest();
    if (latest != nullptr && (snapshot->version < latest->version ||
                              (snapshot->version == latest->version &&
                               (latest->training_done || !snapshot->training_done)))) {
      return;  // not newer
    }
    const size_t num_floats = snapshot->weights.size();
    if (round_ == nullptr || round_->accumulator().num_floats() != num_floats) {
      round_ = std::make_unique<SyncRound>(num_floats, options_.expected_workers);
    }
    // The round opens before any worker can see its weights, so no gradient
    // of this version can arrive before its round exists.
    if (!snapshot->training_done) round_->Open(snapshot->version);
  }
  board_.Publish(std::move(snapshot));
}

std::optional<AggregatePush> Aggregator::NextAggregate() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutdown_ || !outbox_.empty();
  };
  mu_.Await(absl::Condition(&ready));
  if (shutdown_) return std::nullopt;
  AggregatePush out = std::move(outbox_.front());
  outbox_.pop_front();
  return out;
}

void Aggregator::Shutdown() {
  board_.Shutdown();
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

AggregatorCounters Aggregator::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace hips
