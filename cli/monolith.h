#ifndef HIPS_CLI_MONOLITH_H_
#define HIPS_CLI_MONOLITH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "services/data/dataset.h"
#include "services/models/model.h"
#include "services/data/partition.h"
#include "services/models/optimizer.h"
#include "services/types/eval_metrics.h"
#include "services/types/model_layout.h"

namespace hips {

struct MonolithOptions {
  ModelOptions model;  // input_shape and num_classes are taken from the data
  OptimizerOptions optimizer;
  uint64_t seed = 1;
  // The cluster this run stands in for: step v trains on the union of the
  // batches that workers 0..num_workers-1 draw at step v.
  int num_workers = 4;
  int64_t batch_size = 64;
  int64_t steps = 0;
  // How the workers' examples are split (their parts, as each worker
  // computes its own from the training labels: partition.h).
  Partition partition;
};

struct MonolithResult {
  int64_t version = 0;  // steps taken
  int64_t samples = 0;
  ModelLayout layout;
  std::vector<float> weights;
  EvalMetrics metrics;  // on `test`, when given
};

// Single-process SGD, the reference for sync mode: the same model, initial
// weights, optimizer and per-step data as a hips cluster of `num_workers`
// workers, but one forward/backward over the union batch per step.
// `test` may be null (no evaluation).
absl::StatusOr<MonolithResult> RunMonolith(const MonolithOptions& options, const Dataset& train,
                                           const Dataset* test);

}  // namespace hips

#endif  // HIPS_CLI_MONOLITH_H_
