#include "services/runtime/worker_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "services/data/partition.h"

ABSL_FLAG(int64_t, batch_size, 64, "Examples per worker per step.");
ABSL_FLAG(int64_t, step_delay_ms, 0,
          "Straggler injection: a worker sleeps this long after each step (hips local: each of "
          "its --slow_workers).");
ABSL_FLAG(std::string, partition, "iid",
          "How the training examples are split among the homes: iid (example i to home i mod "
          "N), dirichlet (per class, in proportions drawn from Dir(--dirichlet_alpha)) or shards "
          "(label-sorted shards, --shards_per_home each); deterministic from --seed "
          "(docs/noniid.md).");
ABSL_FLAG(double, dirichlet_alpha, hips::Partition::kDefaultAlpha,
          "--partition=dirichlet: the concentration, in (0, 1000]; smaller gives each home fewer "
          "classes.");
ABSL_FLAG(int, shards_per_home, hips::Partition::kDefaultShardsPerHome,
          "--partition=shards: label-sorted shards per home, in [1, 1000].");

namespace hips {

absl::StatusOr<Partition> PartitionFromFlags() {
  return ParsePartition(absl::GetFlag(FLAGS_partition), absl::GetFlag(FLAGS_dirichlet_alpha),
                        absl::GetFlag(FLAGS_shards_per_home));
}

}  // namespace hips
