#include "hq/parameter_server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& o) {
  if (o.expected_aggregators < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HQ needs at least 1 aggregator, got ", o.expected_aggregators));
  }
  if (o.max_versions < 0) return absl::InvalidArgumentError("max versions must be >= 0");
  return absl::OkStatus();
}

ParameterServer::ParameterServer(
    ParameterServerOptions options, ModelLayout layout, std::unique_ptr<Optimizer> optimizer,
    std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish)
    : options_(options),
      layout_(std::move(layout)),
      on_publish_(std::move(on_publish)),
      optimizer_(std::move(optimizer)),
      round_(layout_.num_floats(), options.expected_aggregators) {
  std::shared_ptr<const WeightsSnapshot> initial;
  {
    absl::MutexLock apply_lock(&apply_mu_);
    initial = Snapshot(0);
  }
  {
    absl::MutexLock lock(&mu_);
    status_.max_versions = options_.max_versions;
    status_.training_done = initial->training_done;
    if (!initial->training_done) round_.Open(0);
  }
  board_.Publish(initial);
  if (on_publish_) on_publish_(initial);
}

std::shared_ptr<const WeightsSnapshot> ParameterServer::Snapshot(int64_t version) {
  auto snapshot = std::make_shared<WeightsSnapshot>();
  snapshot->version = version;
  snapshot->layout = layout_;
  snapshot->weights.resize(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(snapshot->weights));
  snapshot->training_done = options_.max_versions > 0 && version >= options_.max_versions;
  return snapshot;
}

absl::StatusOr<PushResult> ParameterServer::AcceptAggregate(const AggregatePush& a) {
  std::vector<float> mean;
  double round_loss = 0.0;
  int64_t round_samples = 0, round_gradients = 0;
  const int64_t version = a.version;
  {
    absl::MutexLock lock(&mu_);
    ++status_.aggregates_received;
    Contribution c;
    c.sender = a.aggregator;
    c.version = a.version;
    c.samples = a.total_samples;
    c.loss_sum = a.loss_sum;
    c.contributors = a.contributors;
    c.scale = 1.0f;  // already Σ n_i·g_i
    c.values = a.sum;
    DropReason reason;
    absl::StatusOr<SyncRound::AddOutcome> outcome = round_.Add(c, &reason);
    if (!outcome.ok()) {
      ++status_.aggregates_dropped[std::string(DropReasonName(reason))];
      return outcome.status();
    }
    if (*outcome == SyncRound::AddOutcome::kDuplicate) {
      ++status_.aggregates_duplicate;
      return PushResult{version, /*duplicate=*/true};
    }
    ++status_.aggregates_applied;
    if (round_.state() != SyncRound::State::kClosed) return PushResult{version, false};
    const GradientAccumulator& acc = round_.accumulator();
    mean.resize(acc.num_floats());
    acc.MeanInto(absl::MakeSpan(mean));
    round_samples = acc.total_samples();
    round_loss = acc.loss_sum() / static_cast<double>(round_samples);
    round_gradients = acc.contributors();
  }

  // This caller closed round `version`; no other round can close until the
  // next version opens below, so the step runs without the round lock.
  std::shared_ptr<const WeightsSnapshot> next;
  {
    absl::MutexLock apply_lock(&apply_mu_);
    const double lr = ScheduledLearningRate(options_.optimizer, version, options_.max_versions);
    if (absl::Status s = optimizer_->Step(mean, lr); !s.ok()) {
      LOG(ERROR) << "optimizer step of version " << version << " failed: " << s;
      // Reopen the round: its contributions were not applied, and senders
      // retry (INTERNAL is retryable) instead of getting duplicate acks.
      absl::MutexLock lock(&mu_);
      status_.aggregates_applied -= round_.received();
      status_.aggregates_dropped["optimizer_failed"] += round_.received();
      round_.Open(version);
      return absl::InternalError(absl::StrCat("optimizer step failed: ", s.message()));
    }
    next = Snapshot(version + 1);
  }
  {
    absl::MutexLock lock(&mu_);
    status_.version = next->version;
    status_.training_done = next->training_done;
    status_.last_loss = round_loss;
    status_.samples_applied += round_samples;
    status_.gradients_applied += round_gradients;
    // The next round opens before anyone can see its weights, so no
    // gradient of version+1 can arrive before its round exists.
    if (!next->training_done) round_.Open(next->version);
  }
  if (next->training_done) {
    LOG(INFO) << "training done at version " << next->version;
  }
  board_.Publish(next);
  if (on_publish_) on_publish_(next);
  return PushResult{version, /*duplicate=*/false};
}

void ParameterServer::RecordRefusal(DropReason reason) {
  absl::MutexLock lock(&mu_);
  ++status_.aggregates_received;
  ++status_.aggregates_dropped[std::string(DropReasonName(reason))];
}

ParameterServerStatus ParameterServer::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace hips
