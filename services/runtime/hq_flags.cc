#include "services/runtime/hq_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/rounds/fedavg_policy.h"

ABSL_FLAG(std::string, mode, "sync", "Consistency mode at start: sync, async, ssp or fedavg.");
ABSL_FLAG(int64_t, staleness, 2, "ssp: largest staleness (in versions) of an applied gradient.");
ABSL_FLAG(double, async_momentum, 0.5,
          "async/ssp with SGD: momentum of their updates when below --momentum (asynchrony "
          "adds momentum of its own); the rate is scaled to keep lr/(1-momentum). -1: off.");
ABSL_FLAG(std::string, staleness_lr, "sqrt",
          "async/ssp: shrink a stale gradient's learning rate: none, inverse (lr/(1+staleness)) "
          "or sqrt (lr/sqrt(1+staleness)).");
ABSL_FLAG(int64_t, eval_every, 100, "Evaluate on the test set every N versions (0: final only).");
ABSL_FLAG(int64_t, max_versions, 0,
          "Training budget in versions (0: none; hips local: overrides --epochs when > 0).");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "HQ's checkpoints: written here and, on start, resumed from the newest valid one "
          "(empty: hips-hq writes none, hips local uses <run_dir>/checkpoints).");
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
ABSL_FLAG(double, proximal_mu, 0,
          "fedavg: FedProx's mu, in [0, 1000]: each local step adds mu*(w - w_round) to a "
          "parameter's gradient, pulling a home's replica back toward the round's weights on "
          "non-IID data (0: plain fedavg; docs/noniid.md).");
ABSL_FLAG(std::string, fedavg_algorithm, "fedavg",
          "fedavg: fedavg, or scaffold (SCAFFOLD: HQ serves a control variate with the "
          "weights and each home corrects its local gradients by it; the run stays in fedavg; "
          "docs/modes.md).");
ABSL_FLAG(int64_t, hq_buffer, 0,
          "sync and fedavg: HQ's consistency across MDCs. 0: HQ's rounds wait for every live "
          "MDC. K > 0: buffered asynchronous (FedBuff): HQ applies once K MDC aggregates are "
          "in, whatever version each was computed on, and an MDC finishes its round before "
          "it takes newer weights, so a slow MDC never holds back the others "
          "(docs/noniid.md).");
ABSL_FLAG(std::string, staleness_weighting, "constant",
          "--hq_buffer: how an aggregate computed t versions back is weighted: constant (1) "
          "or polynomial ((1+t)^-a, a = --staleness_exponent).");
ABSL_FLAG(double, staleness_exponent, 0.5,
          "--staleness_weighting=polynomial: the exponent a, in (0, 10].");
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
ABSL_FLAG(std::string, on_divergence, "stop",
          "When the run diverges (a step made the weights non-finite, or every live worker's "
          "gradients were non-finite twice since the last finite update): stop (end training "
          "with the last weights published; hips local exits 3) or rollback (go on from the "
          "best weights so far with a smaller learning rate; docs/faults.md).");
ABSL_FLAG(double, divergence_lr_factor, 0.5,
          "--on_divergence=rollback: the learning rate is multiplied by this at each rollback, "
          "in (0, 1).");
ABSL_FLAG(int32_t, max_rollbacks, 3,
          "--on_divergence=rollback: at most this many rollbacks; the next divergence stops "
          "the run.");

namespace hips {

absl::StatusOr<ModeConfig> ModeConfigFromFlags(absl::string_view mode) {
  ModeKnobs k;
  k.staleness = absl::GetFlag(FLAGS_staleness);
  k.local_steps = absl::GetFlag(FLAGS_local_steps);
  k.participation = absl::GetFlag(FLAGS_participation);
  k.edge_rounds = absl::GetFlag(FLAGS_edge_rounds);
  k.proximal_mu = absl::GetFlag(FLAGS_proximal_mu);
  k.hq_buffer = absl::GetFlag(FLAGS_hq_buffer);
  absl::StatusOr<StalenessWeighting> weighting =
      ParseStalenessWeighting(absl::GetFlag(FLAGS_staleness_weighting));
  if (!weighting.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--staleness_weighting: ", weighting.status().message()));
  }
  k.staleness_weighting = *weighting;
  k.staleness_exponent = absl::GetFlag(FLAGS_staleness_exponent);
  // A knob given for a mode it does not shape is ignored (as --staleness
  // is outside ssp), but a bad value of one that counts is an error.
  return MakeModeConfig(mode, k);
}

absl::StatusOr<ModeConfig> ModeConfigFromFlags() {
  return ModeConfigFromFlags(absl::GetFlag(FLAGS_mode));
}

absl::StatusOr<bool> ControlVariatesFromFlags() {
  const std::string algorithm = absl::GetFlag(FLAGS_fedavg_algorithm);
  if (algorithm == "fedavg") return false;
  if (algorithm == "scaffold") return true;
  return absl::InvalidArgumentError(
      absl::StrCat("--fedavg_algorithm: unknown algorithm '", algorithm, "' (fedavg or scaffold)"));
}

absl::StatusOr<DivergenceOptions> DivergenceOptionsFromFlags() {
  absl::StatusOr<OnDivergence> on = OnDivergenceFromName(absl::GetFlag(FLAGS_on_divergence));
  if (!on.ok()) return on.status();
  DivergenceOptions o{*on, absl::GetFlag(FLAGS_divergence_lr_factor),
                      absl::GetFlag(FLAGS_max_rollbacks)};
  if (absl::Status s = ValidateDivergenceOptions(o); !s.ok()) return s;
  return o;
}

absl::StatusOr<ServerStepFlags> ServerStepFromFlags() {
  ServerStepFlags f{absl::GetFlag(FLAGS_server_lr), absl::GetFlag(FLAGS_server_momentum)};
  if (absl::Status s = ValidateServerStep(f.lr, f.momentum); !s.ok()) return s;
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
  if (absl::Status s = ValidateWeightsChainOptions(o); !s.ok()) return s;
  return o;
}

}  // namespace hips
