#include "services/runtime/fedavg_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(int64_t, local_steps, 20,
          "fedavg: SGD steps each worker takes on its replica per round before it pushes "
          "its model delta.");
ABSL_FLAG(double, participation, 1.0,
          "fedavg: the fraction of each aggregator's live workers drawn for a round, in (0, 1] "
          "(the others wait for the next round).");
ABSL_FLAG(double, server_lr, 1.0,
          "fedavg: HQ's learning rate on the mean delta.");
ABSL_FLAG(double, server_momentum, 0.5,
          "fedavg: HQ's momentum on the mean delta, in [0, 1) (FedAvgM; 0 with --server_lr=1 "
          "is plain FedAvg, which ends half a point to a point lower: docs/modes.md).");

namespace hips {

absl::StatusOr<ModeConfig> ModeConfigFromFlags(absl::string_view mode, int64_t staleness) {
  return MakeModeConfig(mode, staleness, absl::GetFlag(FLAGS_local_steps),
                        absl::GetFlag(FLAGS_participation));
}

absl::StatusOr<ServerStepFlags> ServerStepFromFlags() {
  ServerStepFlags f{absl::GetFlag(FLAGS_server_lr), absl::GetFlag(FLAGS_server_momentum)};
  if (!(f.lr > 0 && f.lr <= 1000)) {
    return absl::InvalidArgumentError(absl::StrCat("--server_lr must be in (0, 1000], got ", f.lr));
  }
  if (!(f.momentum >= 0 && f.momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server_momentum must be in [0, 1), got ", f.momentum));
  }
  return f;
}

std::vector<std::string> FedAvgFlagsAsArgs() {
  return {absl::StrCat("--local_steps=", absl::GetFlag(FLAGS_local_steps)),
          absl::StrCat("--participation=", absl::GetFlag(FLAGS_participation)),
          absl::StrCat("--server_lr=", absl::GetFlag(FLAGS_server_lr)),
          absl::StrCat("--server_momentum=", absl::GetFlag(FLAGS_server_momentum))};
}

}  // namespace hips
