#ifndef HIPS_SERVICES_CORE_PAYLOADS_H_
#define HIPS_SERVICES_CORE_PAYLOADS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "services/core/consistency.h"
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
  // Increases with every new push of this sender; a retry repeats it.
  int64_t sequence = 0;
  std::vector<float> gradient;
};

// An aggregator's sample-weighted sum Σ n_i·g_i of one round.
struct AggregatePush {
  std::string aggregator;
  int64_t version = 0;
  int64_t total_samples = 0;
  int64_t contributors = 0;
  double loss_sum = 0.0;
  int64_t sequence = 0;  // as GradientPush::sequence
  // Coalesced gradients of several versions: contributors per version
  // (`version` is the oldest). Empty: all computed on `version`.
  std::map<int64_t, int64_t> contributor_versions;
  std::vector<float> sum;
};

struct PushResult {
  int64_t version = 0;
  bool duplicate = false;
  // The newest version the receiver knows of.
  int64_t newest_version = 0;
};

// One published version of the model's weights. Immutable once published and
// shared by reference between every reader.
struct WeightsSnapshot {
  int64_t version = 0;
  ModelLayout layout;
  std::vector<float> weights;
  bool training_done = false;
  // The mode these weights are trained in, and the version it started at.
  ModeConfig mode;
  int64_t mode_since = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_PAYLOADS_H_
