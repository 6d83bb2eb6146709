#ifndef HIPS_WORKER_WORKER_H_
#define HIPS_WORKER_WORKER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/data/dataset.h"
#include "services/data/shard_sampler.h"
#include "services/models/model.h"
#include "worker/aggregator_client.h"

namespace hips {

struct WorkerOptions {
  std::string id = "worker-0";
  int index = 0;        // this worker's shard
  int num_workers = 1;  // shards in the cluster
  int64_t batch_size = 64;
  uint64_t data_seed = 1;
  absl::Duration long_poll = absl::Seconds(2);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
};

// The home-model tier: a model replica and one data shard. Sync loop:
// pull weights of version v -> gradient of the mean loss on this worker's
// batch of step v -> push it tagged with v -> pull v+1. The batch of step v
// is a pure function of (data seed, shard, v), so every worker's data order
// is reproducible (the equality test and the monolith rely on it).
//
// Run() is called from one thread; Shutdown() from any.
class Worker {
 public:
  // `client` must outlive the worker.
  static absl::StatusOr<std::unique_ptr<Worker>> Create(WorkerOptions options,
                                                        std::unique_ptr<Model> model,
                                                        std::shared_ptr<const Dataset> data,
                                                        AggregatorClient* client);

  // Trains until the weights say training is done (OK) or Shutdown
  // (CANCELLED). Retries transient errors with backoff; returns other errors
  // (e.g. FAILED_PRECONDITION for weights of another model).
  absl::Status Run();

  void Shutdown();

  int64_t steps() const { return steps_; }

 private:
  Worker(WorkerOptions options, std::unique_ptr<Model> model,
         std::shared_ptr<const Dataset> data, ShardSampler sampler, AggregatorClient* client);

  absl::Status ComputeStep(const WeightsSnapshot& weights);
  absl::Status PushWithRetry();

  const WorkerOptions options_;
  std::unique_ptr<Model> model_;
  const std::shared_ptr<const Dataset> data_;
  ShardSampler sampler_;
  AggregatorClient* const client_;
  absl::Notification stop_;
  std::once_flag shutdown_once_;

  // Reused between steps (only Run's thread touches them).
  GradientPush push_;
  std::vector<float> features_;
  std::vector<int64_t> labels_;
  int64_t steps_ = 0;
};

}  // namespace hips

#endif  // HIPS_WORKER_WORKER_H_
