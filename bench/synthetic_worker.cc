#include "bench/synthetic_worker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/core/push_ledger.h"

namespace hips::bench {

absl::StatusOr<SyntheticWorkerResult> RunSyntheticWorker(AggregatorClient* client,
                                                         const SyntheticWorkerOptions& options) {
  SyntheticWorkerResult result;
  GradientPush push;
  push.sender = options.id;
  push.samples = 1;
  push.incarnation = NewIncarnation();
  int64_t min_version = 0;
  int64_t incarnation = 0;
  absl::Time last_arrival;
  const int total = options.warmup + options.rounds;
  for (int r = 0; r <= total; ++r) {
    if (r == 0 || options.wait_for_next_version) {
      absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w =
          client->PullWeights(min_version, absl::Now() + options.timeout, false, incarnation);
      if (!w.ok()) {
        return absl::Status(w.status().code(),
                            absl::StrCat(options.id, ": pulling weights ", min_version, ": ",
                                         w.status().message()));
      }
      const absl::Time now = absl::Now();
      if (r > options.warmup)
        result.round_seconds.push_back(absl::ToDoubleSeconds(now - last_arrival));
      last_arrival = now;
      push.version = (*w)->version;
      incarnation = (*w)->incarnation;
      min_version = push.version + 1;
      if (push.gradient.empty()) push.gradient.assign((*w)->weights.size(), 1e-4f);
      result.floats = static_cast<int64_t>(push.gradient.size());
    }
    if (r == total) break;
    ++push.sequence;
    push.step = r;
    const absl::Time start = absl::Now();
    absl::StatusOr<PushResult> ack = client->PushGradient(push);
    if (!ack.ok()) {
      return absl::Status(ack.status().code(), absl::StrCat(options.id, ": pushing round ", r, ": ",
                                                            ack.status().message()));
    }
    if (r >= options.warmup)
      result.push_seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return result;
}

}  // namespace hips::bench
