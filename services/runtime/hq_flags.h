#ifndef HIPS_SERVICES_RUNTIME_HQ_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_HQ_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/numeric/weights_chain.h"
#include "services/types/consistency.h"
#include "services/types/divergence.h"

// The flags of HQ's training that hips-hq and the hips CLI share (hips local
// hands them to its HQ; hips mode takes the mode's): --mode and what shapes
// it (--staleness; fedavg's --local_steps, --participation, --edge_rounds,
// --proximal_mu, --server_lr, --server_momentum; HQ's buffer across MDCs,
// --hq_buffer, --staleness_weighting, --staleness_exponent), async's --async_momentum and
// --staleness_lr, the budget --max_versions, --eval_every,
// --checkpoint_dir, and HQ's weights downstream (--weights_compression,
// --weights_topk_ratio, --weights_resync_every: docs/wan.md). Only main()s
// link this.
ABSL_DECLARE_FLAG(std::string, mode);
ABSL_DECLARE_FLAG(int64_t, staleness);
ABSL_DECLARE_FLAG(int64_t, local_steps);
ABSL_DECLARE_FLAG(double, participation);
ABSL_DECLARE_FLAG(int64_t, edge_rounds);
ABSL_DECLARE_FLAG(double, proximal_mu);
ABSL_DECLARE_FLAG(std::string, fedavg_algorithm);
ABSL_DECLARE_FLAG(int64_t, hq_buffer);
ABSL_DECLARE_FLAG(std::string, staleness_weighting);
ABSL_DECLARE_FLAG(double, staleness_exponent);
ABSL_DECLARE_FLAG(double, server_lr);
ABSL_DECLARE_FLAG(double, server_momentum);
ABSL_DECLARE_FLAG(std::string, weights_compression);
ABSL_DECLARE_FLAG(double, weights_topk_ratio);
ABSL_DECLARE_FLAG(int64_t, weights_resync_every);
ABSL_DECLARE_FLAG(std::string, on_divergence);
ABSL_DECLARE_FLAG(double, divergence_lr_factor);
ABSL_DECLARE_FLAG(int32_t, max_rollbacks);
ABSL_DECLARE_FLAG(double, async_momentum);
ABSL_DECLARE_FLAG(std::string, staleness_lr);
ABSL_DECLARE_FLAG(int64_t, eval_every);
ABSL_DECLARE_FLAG(int64_t, max_versions);
ABSL_DECLARE_FLAG(std::string, checkpoint_dir);

namespace hips {

// The mode named `mode` (or --mode) with --staleness, --local_steps,
// --participation, --edge_rounds, --proximal_mu, --hq_buffer,
// --staleness_weighting and --staleness_exponent (each counted only by the
// modes it shapes).
absl::StatusOr<ModeConfig> ModeConfigFromFlags(absl::string_view mode);
absl::StatusOr<ModeConfig> ModeConfigFromFlags();

struct ServerStepFlags {
  double lr = 1.0;
  double momentum = 0.0;
};
// --server_lr and --server_momentum, checked: INVALID_ARGUMENT outside
// (0, 1000] and [0, 1).
absl::StatusOr<ServerStepFlags> ServerStepFromFlags();

// --on_divergence, --divergence_lr_factor and --max_rollbacks, checked.
absl::StatusOr<DivergenceOptions> DivergenceOptionsFromFlags();
// --fedavg_algorithm: whether HQ serves SCAFFOLD's control variates
// (ParameterServerOptions::control_variates).
absl::StatusOr<bool> ControlVariatesFromFlags();

// --weights_compression and its two knobs, checked: nullopt for none.
absl::StatusOr<std::optional<WeightsChainOptions>> WeightsCompressionFromFlags();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_HQ_FLAGS_H_
