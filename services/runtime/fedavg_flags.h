#ifndef HIPS_SERVICES_RUNTIME_FEDAVG_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_FEDAVG_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/numeric/weights_chain.h"
#include "services/types/consistency.h"

// --local_steps, --participation, --edge_rounds, --server_lr and
// --server_momentum: the
// fedavg mode's knobs, and --weights_compression, --weights_topk_ratio and
// --weights_resync_every, HQ's weights downstream: what a long way between
// HQ and the aggregators calls for (docs/wan.md), shared by hips-hq and the
// hips CLI (hips local, hips mode). Only main()s link this.

namespace hips {

// The mode named `mode` with --staleness `staleness` and this module's
// --local_steps, --participation and --edge_rounds (each counted only by
// its mode).
absl::StatusOr<ModeConfig> ModeConfigFromFlags(absl::string_view mode, int64_t staleness);

struct ServerStepFlags {
  double lr = 1.0;
  double momentum = 0.0;
};
// --server_lr and --server_momentum, checked: INVALID_ARGUMENT outside
// (0, 1000] and [0, 1).
absl::StatusOr<ServerStepFlags> ServerStepFromFlags();

// --weights_compression and its two knobs, checked: nullopt for none.
absl::StatusOr<std::optional<WeightsChainOptions>> WeightsCompressionFromFlags();

// The eight flags as arguments for hips-hq (hips local).
std::vector<std::string> FedAvgFlagsAsArgs();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_FEDAVG_FLAGS_H_
