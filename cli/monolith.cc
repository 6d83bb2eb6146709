#include "cli/monolith.h"

#include <memory>
#include <utility>

#include "services/data/shard_sampler.h"

namespace hips {

absl::StatusOr<MonolithResult> RunMonolith(const MonolithOptions& o, const Dataset& train,
                                           const Dataset* test) {
  ModelOptions model_options = o.model;
  model_options.input_shape = train.example_shape;
  model_options.num_classes = train.num_classes;
  absl::StatusOr<std::unique_ptr<Model>> master = Model::Create(model_options, o.seed);
  if (!master.ok()) return master.status();
  // The gradient replica is a second instance: the same split of roles as
  // HQ (optimizer on master weights) and a worker (forward/backward).
  absl::StatusOr<std::unique_ptr<Model>> replica = Model::Create(model_options, o.seed);
  if (!replica.ok()) return replica.status();
  MonolithResult result;
  result.layout = (*master)->layout();
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      CreateTorchOptimizer(o.optimizer, *std::move(master));
  if (!optimizer.ok()) return optimizer.status();

  absl::StatusOr<std::vector<std::vector<int64_t>>> parts =
      PartitionExamples(train.labels, o.num_workers, o.partition, o.seed, o.batch_size);
  if (!parts.ok()) return parts.status();
  std::vector<ShardSampler> samplers;
  for (int k = 0; k < o.num_workers; ++k) {
    absl::StatusOr<ShardSampler> s =
        o.partition.kind == Partition::Kind::kIid
            ? ShardSampler::Create(train.num_examples(), k, o.num_workers, o.batch_size, o.seed)
            : ShardSampler::FromExamples(std::move((*parts)[k]), k, o.batch_size, o.seed);
    if (!s.ok()) return s.status();
    samplers.push_back(*std::move(s));
  }

  const int64_t n = result.layout.num_floats();
  std::vector<float> weights(n), grad(n);
  std::vector<int64_t> batch;
  std::vector<float> features;
  std::vector<int64_t> labels;
  std::vector<float> targets;
  for (int64_t step = 0; step < o.steps; ++step) {
    batch.clear();
    for (ShardSampler& s : samplers) {
      const std::vector<int64_t> part = s.Batch(step);
      batch.insert(batch.end(), part.begin(), part.end());
    }
    train.Gather(batch, &features, &labels, &targets);
    (*optimizer)->GetWeights(absl::MakeSpan(weights));
    if (absl::Status s = (*replica)->SetWeights(weights); !s.ok()) return s;
    absl::StatusOr<double> loss =
        (*replica)->ComputeGradient(features, labels, targets, absl::MakeSpan(grad));
    if (!loss.ok()) return loss.status();
    const double lr = ScheduledLearningRate(o.optimizer, step, o.steps);
    if (absl::Status s = (*optimizer)->Step(grad, lr); !s.ok()) return s;
    result.samples += static_cast<int64_t>(batch.size());
  }
  result.version = o.steps;
  (*optimizer)->GetWeights(absl::MakeSpan(weights));
  result.weights = std::move(weights);
  if (test != nullptr) {
    if (absl::Status s = (*replica)->SetWeights(result.weights); !s.ok()) return s;
    absl::StatusOr<EvalMetrics> m = (*replica)->Evaluate(*test);
    if (!m.ok()) return m.status();
    result.metrics = *m;
  }
  return result;
}

}  // namespace hips
