#include "worker/worker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/core/retry.h"

namespace hips {

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(WorkerOptions options,
                                                       std::unique_ptr<Model> model,
                                                       std::shared_ptr<const Dataset> data,
                                                       AggregatorClient* client) {
  if (options.id.empty()) return absl::InvalidArgumentError("worker id must not be empty");
  absl::StatusOr<ShardSampler> sampler =
      ShardSampler::Create(data->num_examples(), options.index, options.num_workers,
                           options.batch_size, options.data_seed);
  if (!sampler.ok()) return sampler.status();
  return std::unique_ptr<Worker>(new Worker(std::move(options), std::move(model), std::move(data),
                                            *std::move(sampler), client));
}

Worker::Worker(WorkerOptions options, std::unique_ptr<Model> model,
               std::shared_ptr<const Dataset> data, ShardSampler sampler,
               AggregatorClient* client)
    : options_(std::move(options)),
      model_(std::move(model)),
      data_(std::move(data)),
      sampler_(std::move(sampler)),
      client_(client) {
  push_.sender = options_.id;
  push_.gradient.resize(model_->layout().num_floats());
}

void Worker::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    stop_.Notify();
    client_->CancelCalls();
  });
}

absl::Status Worker::Run() {
  int64_t have = -1;  // newest version this worker computed on
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (!stop_.HasBeenNotified()) {
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights =
        client_->PullWeights(have + 1, absl::Now() + options_.long_poll);
    if (!weights.ok()) {
      if (absl::IsDeadlineExceeded(weights.status())) continue;
      if (!IsRetryable(weights.status())) return weights.status();
      LOG_EVERY_N(WARNING, 20) << options_.id << ": pulling weights: " << weights.status();
      if (stop_.WaitForNotificationWithTimeout(backoff.Next())) break;
      continue;
    }
    backoff.Reset();
    const WeightsSnapshot& w = **weights;
    if (w.layout != model_->layout()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the cluster trains a different model: ", w.layout.DebugString()));
    }
    if (w.training_done) {
      LOG(INFO) << options_.id << ": training done at version " << w.version << " after "
                << steps_ << " steps";
      return absl::OkStatus();
    }
    if (absl::Status s = ComputeStep(w); !s.ok()) return s;
    if (absl::Status s = PushWithRetry(); !s.ok()) {
      if (absl::IsCancelled(s)) break;
      // A refused gradient (e.g. its round closed) is counted by the
      // aggregator; this worker moves on to newer weights.
      LOG(WARNING) << options_.id << ": gradient of version " << w.version << " refused: " << s;
    }
    have = w.version;
    ++steps_;
  }
  return absl::CancelledError("worker shut down");
}

absl::Status Worker::ComputeStep(const WeightsSnapshot& w) {
  if (absl::Status s = model_->SetWeights(w.weights); !s.ok()) return s;
  const std::vector<int64_t> batch = sampler_.Batch(w.version);
  data_->Gather(batch, &features_, &labels_);
  absl::StatusOr<double> loss_sum =
      model_->ComputeGradient(features_, labels_, absl::MakeSpan(push_.gradient));
  if (!loss_sum.ok()) return loss_sum.status();
  push_.version = w.version;
  push_.samples = static_cast<int64_t>(batch.size());
  push_.loss_sum = *loss_sum;
  return absl::OkStatus();
}

absl::Status Worker::PushWithRetry() {
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (true) {
    absl::StatusOr<PushResult> result = client_->PushGradient(push_);
    if (result.ok()) {
      LOG_IF(WARNING, result->duplicate)
          << options_.id << ": the aggregator already had a gradient of version "
          << push_.version << " from this id (is it unique?)";
      return absl::OkStatus();
    }
    if (!IsRetryable(result.status())) return result.status();
    LOG_EVERY_N(WARNING, 20) << options_.id << ": pushing version " << push_.version << ": "
                             << result.status();
    if (stop_.WaitForNotificationWithTimeout(backoff.Next())) {
      return absl::CancelledError("worker shut down");
    }
  }
}

}  // namespace hips
