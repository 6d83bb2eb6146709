#include "hq/parameter_server_options.h"

#include "absl/strings/str_cat.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/rounds/fedavg_policy.h"
#include "services/rounds/round_policy.h"

namespace hips {

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& o) {
  if (o.expected_aggregators < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HQ needs at least 1 aggregator, got ", o.expected_aggregators));
  }
  if (o.max_aggregators != 0 && o.max_aggregators < o.expected_aggregators) {
    return absl::InvalidArgumentError(absl::StrCat("max aggregators must be at least the ",
                                                   o.expected_aggregators, " expected, got ",
                                                   o.max_aggregators));
  }
  if (o.max_workers < 0)
    return absl::InvalidArgumentError("max workers (--max_workers) must be >= 0");
  if (o.max_batch_samples < 1 || o.max_batch_samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("max batch samples must be in [1, 2^31], got ", o.max_batch_samples));
  }
  if (o.quorum_aggregators < 0 || o.quorum_aggregators > o.expected_aggregators) {
    return absl::InvalidArgumentError(absl::StrCat("aggregator quorum must be in [0, ",
                                                   o.expected_aggregators, "], got ",
                                                   o.quorum_aggregators));
  }
  if (o.round_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the round deadline (--round_deadline_ms) must be positive, or 0 for none");
  }
  if (o.lease <= absl::ZeroDuration())
    return absl::InvalidArgumentError("the lease (--lease_ms) must be positive");
  if (o.max_versions < 0)
    return absl::InvalidArgumentError("max versions (--max_versions) must be >= 0");
  if (o.max_samples < 0)
    return absl::InvalidArgumentError("max samples (--max_samples) must be >= 0");
  if (o.async_momentum >= 1)
    return absl::InvalidArgumentError("async momentum (--async_momentum) must be < 1");
  if (o.lr_reference_samples < 0) {
    return absl::InvalidArgumentError(
        "the learning-rate reference batch (--async_lr_batch) must be >= 0");
  }
  if (absl::Status s = ValidateServerStep(o.server_lr, o.server_momentum); !s.ok()) return s;
  if (o.checkpoint_every_versions < 0 || o.checkpoint_every < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--checkpoint_every_versions and --checkpoint_every_s must be >= 0");
  }
  if (absl::Status s = ValidateDivergenceOptions(o.divergence); !s.ok()) return s;
  if (absl::Status s = ValidateModeConfig(o.mode); !s.ok()) return s;
  if (absl::Status s = CheckModeFitsControlVariates(o.mode, o.control_variates); !s.ok()) {
    return s;
  }
  return CheckModeFitsOptimizer(o.mode, o.optimizer.name);
}

TrainerOptions TrainerOptionsOf(const ParameterServerOptions& o) {
  TrainerOptions t;
  t.optimizer = o.optimizer;
  t.max_versions = o.max_versions;
  t.max_samples = o.max_samples;
  t.mode = o.mode;
  return t;
}

RoundPolicyOptions PolicyOptionsOf(const ParameterServerOptions& options, const ModeConfig& mode,
                                   size_t num_floats, BufferPool* spares) {
  RoundPolicyOptions o;
  o.tier = RoundPolicyOptions::Tier::kHq;
  o.mode = mode;
  o.num_floats = num_floats;
  o.quorum =
      options.quorum_aggregators == 0 ? options.expected_aggregators : options.quorum_aggregators;
  o.round_deadline = options.round_deadline;
  o.spares = spares;
  const OptimizerOptions& base = options.optimizer;
  o.hq.base = SgdSettings{base.momentum, base.nesterov, base.weight_decay};
  o.hq.lr_reference_samples = options.lr_reference_samples;
  o.hq.staleness_lr = options.staleness_lr;
  o.hq.async_momentum = options.async_momentum;
  o.hq.server_lr = options.server_lr;
  o.hq.server_momentum = options.server_momentum;
  return o;
}

}  // namespace hips
