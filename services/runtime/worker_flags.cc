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
ABSL_FLAG(std::string, dirichlet_draw, "per_class",
          "--partition=dirichlet: per_class (each class's examples dealt to the homes in "
          "proportions drawn from Dir(alpha); homes' sizes differ) or per_home (each home draws "
          "its mix of classes from Dir(alpha) and gets an equal share of the examples: label "
          "skew alone, and room for many homes or a small alpha; docs/noniid.md).");
ABSL_FLAG(int, shards_per_home, hips::Partition::kDefaultShardsPerHome,
          "--partition=shards: label-sorted shards per home, in [1, 1000].");

namespace hips {

absl::StatusOr<Partition> PartitionFromFlags() {
  return ParsePartition(absl::GetFlag(FLAGS_partition), absl::GetFlag(FLAGS_dirichlet_alpha),
                        absl::GetFlag(FLAGS_shards_per_home), absl::GetFlag(FLAGS_dirichlet_draw));
}

}  // namespace hips
