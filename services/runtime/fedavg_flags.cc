#include "services/runtime/fedavg_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(int64_t, local_steps, 20,
          "fedavg: SGD steps each worker takes on its replica per round before it pushes "
          "its model delta.");
ABSL_FLAG(double, participation, 1.0,
          "fedavg: the fraction of each aggregator's live workers drawn for a round, in (0, 1] "
          "(the others wait for the next round).");
ABSL_FLAG(int64_t, edge_rounds, 1,
          "fedavg: rounds each aggregator runs on its own copy of the model per HQ version "
          "(HierFAVG): it applies its workers' mean delta and sends the copy back to them this "
          "many times before one aggregate goes to HQ (docs/wan.md). 1: every round goes to HQ.");
ABSL_FLAG(double, server_lr, 1.0, "fedavg: HQ's learning rate on the mean delta.");
ABSL_FLAG(double, server_momentum, 0.5,
          "fedavg: HQ's momentum on the mean delta, in [0, 1) (FedAvgM; 0 with --server_lr=1 "
          "is plain FedAvg, which ends half a point to a point lower: docs/modes.md).");
ABSL_FLAG(std::string, weights_compression, "none",
          "How HQ sends weights to an aggregator that holds the previous ones: none (whole, "
          "fp32), bf16, fp16 or topk, a compressed delta (docs/wan.md). Joining aggregators "
          "and every --weights_resync_every versions get them whole.");
ABSL_FLAG(double, weights_topk_ratio, 0.01,
          "--weights_compression=topk: the fraction of the weights' changes sent per version.");
ABSL_FLAG(int64_t, weights_resync_every, 100,
          "--weights_compression: every this many versions the weights go whole, and every "
          "aggregator then holds exactly HQ's.");

namespace hips {

absl::StatusOr<ModeConfig> ModeConfigFromFlags(absl::string_view mode, int64_t staleness) {
  return MakeModeConfig(mode, staleness, absl::GetFlag(FLAGS_local_steps),
                        absl::GetFlag(FLAGS_participation), absl::GetFlag(FLAGS_edge_rounds));
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

absl::StatusOr<std::optional<WeightsChainOptions>> WeightsCompressionFromFlags() {
  absl::StatusOr<Encoding> encoding = ParseEncoding(absl::GetFlag(FLAGS_weights_compression));
  if (!encoding.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights_compression: ", encoding.status().message()));
  }
  if (*encoding == Encoding::kFp32) return std::nullopt;
  WeightsChainOptions o;
  o.encoding = *encoding;
  o.topk_ratio = absl::GetFlag(FLAGS_weights_topk_ratio);
  o.resync_every = absl::GetFlag(FLAGS_weights_resync_every);
  if (!(o.topk_ratio > 0 && o.topk_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights_topk_ratio must be in (0, 1], got ", o.topk_ratio));
  }
  if (o.resync_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights_resync_every must be at least 1, got ", o.resync_every));
  }
  if (absl::Status s = ValidateWeightsChainOptions(o); !s.ok()) return s;
  return o;
}

std::vector<std::string> FedAvgFlagsAsArgs() {
  return {absl::StrCat("--local_steps=", absl::GetFlag(FLAGS_local_steps)),
          absl::StrCat("--participation=", absl::GetFlag(FLAGS_participation)),
          absl::StrCat("--edge_rounds=", absl::GetFlag(FLAGS_edge_rounds)),
          absl::StrCat("--server_lr=", absl::GetFlag(FLAGS_server_lr)),
          absl::StrCat("--server_momentum=", absl::GetFlag(FLAGS_server_momentum)),
          absl::StrCat("--weights_compression=", absl::GetFlag(FLAGS_weights_compression)),
          absl::StrCat("--weights_topk_ratio=", absl::GetFlag(FLAGS_weights_topk_ratio)),
          absl::StrCat("--weights_resync_every=", absl::GetFlag(FLAGS_weights_resync_every))};
}

}  // namespace hips
