#ifndef HIPS_BENCH_SYNTHETIC_WORKER_H_
#define HIPS_BENCH_SYNTHETIC_WORKER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/aggregator_client.h"

namespace hips::bench {

// A worker without a model: it takes the layout from the weights it pulls
// and pushes a gradient of that size (a small constant in every float) for
// one sample, so a cluster of them measures communication alone.
struct SyntheticWorkerOptions {
  std::string id;
  // Timed rounds, after `warmup` untimed ones.
  int rounds = 10;
  int warmup = 2;
  // Sync: wait for the next version's weights after each push (a round is
  // pull, push, reduce, apply, broadcast). Otherwise push on the first
  // weights again and again (the push benchmark).
  bool wait_for_next_version = true;
  // Each pull or push must end within this.
  absl::Duration timeout = absl::Seconds(120);
};

struct SyntheticWorkerResult {
  int64_t floats = 0;
  // From one weights arrival to the next (wait_for_next_version only).
  std::vector<double> round_seconds;
  // From the push's start to its acknowledgement.
  std::vector<double> push_seconds;
};

absl::StatusOr<SyntheticWorkerResult> RunSyntheticWorker(AggregatorClient* client,
                                                         const SyntheticWorkerOptions& options);

}  // namespace hips::bench

#endif  // HIPS_BENCH_SYNTHETIC_WORKER_H_
