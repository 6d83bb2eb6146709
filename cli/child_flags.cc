#include "cli/child_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/runtime/aggregator_flags.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/round_flags.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"

namespace hips {
namespace {

template <typename T>
const absl::CommandLineFlag* Handle(const absl::Flag<T>& flag) {
  return &absl::GetFlagReflectionHandle(flag);
}

}  // namespace

const std::vector<ChildFlag>& ChildFlags() {
  // HQ and the workers must agree on the model, the data and the seed; the
  // senders of gradients (workers, aggregators) on how a hop travels. Each
  // row names the flag's own object: a program that links this table links
  // every flag of it.
  static const std::vector<ChildFlag>* const kFlags = new std::vector<ChildFlag>{
      // flag                  hq     agg    worker
      {Handle(FLAGS_model), true, false, true},
      {Handle(FLAGS_model_file), true, false, true},
      {Handle(FLAGS_loss), true, false, true},
      {Handle(FLAGS_fullmlp_layers), true, false, true},
      {Handle(FLAGS_fullmlp_width), true, false, true},
      {Handle(FLAGS_optimizer), true, false, true},
      {Handle(FLAGS_lr), true, false, true},
      {Handle(FLAGS_momentum), true, false, true},
      {Handle(FLAGS_lr_schedule), true, false, true},
      {Handle(FLAGS_nesterov), true, false, true},
      {Handle(FLAGS_weight_decay), true, false, true},
      {Handle(FLAGS_data), true, false, true},
      {Handle(FLAGS_data_dir), true, false, true},
      {Handle(FLAGS_train_data), true, false, true},
      {Handle(FLAGS_test_data), true, false, true},
      {Handle(FLAGS_synthetic_examples), true, false, true},
      {Handle(FLAGS_synthetic_test_examples), true, false, true},
      {Handle(FLAGS_seed), true, false, true},
      {Handle(FLAGS_torch_threads), true, false, true},
      {Handle(FLAGS_mode), true, false, false},
      {Handle(FLAGS_staleness), true, false, false},
      {Handle(FLAGS_local_steps), true, false, false},
      {Handle(FLAGS_participation), true, false, false},
      {Handle(FLAGS_edge_rounds), true, false, false},
      {Handle(FLAGS_proximal_mu), true, false, false},
      {Handle(FLAGS_fedavg_algorithm), true, false, false},
      {Handle(FLAGS_hq_buffer), true, false, false},
      {Handle(FLAGS_staleness_weighting), true, false, false},
      {Handle(FLAGS_staleness_exponent), true, false, false},
      {Handle(FLAGS_server_lr), true, false, false},
      {Handle(FLAGS_server_momentum), true, false, false},
      {Handle(FLAGS_weights_compression), true, false, false},
      {Handle(FLAGS_weights_topk_ratio), true, false, false},
      {Handle(FLAGS_weights_resync_every), true, false, false},
      {Handle(FLAGS_async_momentum), true, false, false},
      {Handle(FLAGS_staleness_lr), true, false, false},
      {Handle(FLAGS_eval_every), true, false, false},
      {Handle(FLAGS_on_divergence), true, false, false},
      {Handle(FLAGS_divergence_lr_factor), true, false, false},
      {Handle(FLAGS_max_rollbacks), true, false, false},
      {Handle(FLAGS_lease_ms), true, true, false},
      {Handle(FLAGS_coalesce_ms), false, true, false},
      {Handle(FLAGS_clip_norm), true, true, false},
      {Handle(FLAGS_max_samples_per_push), false, true, false},
      {Handle(FLAGS_robust), false, true, false},
      {Handle(FLAGS_trim_fraction), false, true, false},
      {Handle(FLAGS_quarantine_ms), false, true, false},
      {Handle(FLAGS_compression), false, true, true},
      {Handle(FLAGS_topk_ratio), false, true, true},
      {Handle(FLAGS_error_feedback), false, true, true},
      {Handle(FLAGS_batch_size), false, false, true},
      {Handle(FLAGS_partition), false, false, true},
      {Handle(FLAGS_dirichlet_alpha), false, false, true},
      {Handle(FLAGS_dirichlet_draw), false, false, true},
      {Handle(FLAGS_shards_per_home), false, false, true},
  };
  return *kFlags;
}

bool TakesFlag(const ChildFlag& f, Tier tier) {
  switch (tier) {
    case Tier::kHq:
      return f.hq;
    case Tier::kAggregator:
      return f.aggregator;
    case Tier::kWorker:
      return f.worker;
  }
  return false;
}

std::vector<std::string> ChildFlagArgs(Tier tier) {
  std::vector<std::string> args;
  for (const ChildFlag& f : ChildFlags()) {
    if (TakesFlag(f, tier))
      args.push_back(absl::StrCat("--", f.flag->Name(), "=", f.flag->CurrentValue()));
  }
  return args;
}

}  // namespace hips
