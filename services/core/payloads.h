#ifndef HIPS_SERVICES_CORE_PAYLOADS_H_
#define HIPS_SERVICES_CORE_PAYLOADS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "services/core/model_layout.h"

// Domain types of what travels between tiers. The gRPC adapters convert
// between these and the hips.v1 protobuf messages; logic never sees protobuf.

namespace hips {

// A worker's mean gradient over `samples` examples, computed on `version`.
struct GradientPush {
  std::string sender;
  int64_t version = 0;
  int64_t samples = 0;
  double loss_sum = 0.0;
  std::vector<float> gradient;
};

// An aggregator's sample-weighted sum Σ n_i·g_i of one round.
struct AggregatePush {
  std::string aggregator;
  int64_t version = 0;
  int64_t total_samples = 0;
  int64_t contributors = 0;
  double loss_sum = 0.0;
  std::vector<float> sum;
};

struct PushResult {
  int64_t version = 0;
  bool duplicate = false;
};

// One published version of the model's weights. Immutable once published and
// shared by reference between every reader.
struct WeightsSnapshot {
  int64_t version = 0;
  ModelLayout layout;
  std::vector<float> weights;
  bool training_done = false;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_PAYLOADS_H_
