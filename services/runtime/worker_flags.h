#ifndef HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_

#include <cstdint>

#include "absl/flags/declare.h"

#include <string>

#include "absl/status/statusor.h"
#include "services/data/partition.h"

// The worker's flags that hips local hands on: --batch_size,
// --step_delay_ms and how the homes' data is split (--partition,
// --dirichlet_alpha, --dirichlet_draw, --shards_per_home). Only main()s
// link this.
ABSL_DECLARE_FLAG(int64_t, batch_size);
ABSL_DECLARE_FLAG(int64_t, step_delay_ms);
ABSL_DECLARE_FLAG(std::string, partition);
ABSL_DECLARE_FLAG(double, dirichlet_alpha);
ABSL_DECLARE_FLAG(std::string, dirichlet_draw);
ABSL_DECLARE_FLAG(int, shards_per_home);

namespace hips {

// --partition, --dirichlet_alpha, --dirichlet_draw and --shards_per_home,
// checked.
absl::StatusOr<Partition> PartitionFromFlags();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_
