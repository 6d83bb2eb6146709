#ifndef HIPS_SERVICES_TYPES_CONSISTENCY_H_
#define HIPS_SERVICES_TYPES_CONSISTENCY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hips {

// How HQ turns gradients into versions (docs/modes.md):
//   sync   one update per round, from every expected contribution (or a
//          quorum at a deadline);
//   async  every gradient (or small coalesced batch) applied as it arrives;
//   ssp    async, but a gradient computed more than `staleness` versions
//          before the version it would be applied to is refused;
//   fedavg local SGD and federated averaging (docs/wan.md): a round as in
//          sync, but each worker takes `local_steps` SGD steps on its own
//          replica and pushes its model delta; HQ applies the mean delta
//          with a server learning rate and momentum (FedAvgM). With
//          `participation` < 1 each aggregator draws that fraction of its
//          live workers for each round; the others wait for the next one.
enum class Mode { kSync, kAsync, kSsp, kFedAvg };

// Whether the mode trains in rounds (one version from every expected
// contribution): sync and fedavg.
inline bool UsesRounds(Mode mode) { return mode == Mode::kSync || mode == Mode::kFedAvg; }

struct ModeConfig {
  Mode mode = Mode::kSync;
  int64_t staleness = 0;  // ssp only; 0 otherwise
  // fedavg only (1 and 1.0 otherwise): optimizer steps a worker takes per
  // round, and the fraction of live workers drawn for each round.
  int64_t local_steps = 1;
  double participation = 1.0;
  // fedavg only (1 otherwise): rounds an aggregator runs on its own copy of
  // the model per HQ version (HierFAVG's edge aggregation): it applies its
  // workers' mean delta and sends the copy back to them E times, then one
  // aggregate goes to HQ.
  int64_t edge_rounds = 1;

  friend bool operator==(const ModeConfig& a, const ModeConfig& b) {
    return a.mode == b.mode && a.staleness == b.staleness && a.local_steps == b.local_steps &&
           a.participation == b.participation && a.edge_rounds == b.edge_rounds;
  }
  friend bool operator!=(const ModeConfig& a, const ModeConfig& b) { return !(a == b); }
};

// Largest --staleness accepted (far beyond any useful bound).
inline constexpr int64_t kMaxStaleness = 1 << 20;
// Largest --local_steps accepted.
inline constexpr int64_t kMaxLocalSteps = 100000;
// Largest --edge_rounds accepted.
inline constexpr int64_t kMaxEdgeRounds = 1000;

absl::string_view ModeName(Mode mode);  // "sync", "async", "ssp", "fedavg"
absl::StatusOr<Mode> ParseMode(absl::string_view name);
// "sync", "async", "ssp(2)", "fedavg(H=10)", "fedavg(H=10,F=0.5)" or
// "fedavg(H=10,F=0.5,E=4)".
std::string DescribeMode(const ModeConfig& config);

// INVALID_ARGUMENT unless staleness is in [0, kMaxStaleness] for ssp and 0
// for the other modes, and for fedavg local_steps is in [1, kMaxLocalSteps],
// participation in (0, 1] and edge_rounds in [1, kMaxEdgeRounds] (1, 1.0
// and 1 for the other modes).
absl::Status ValidateModeConfig(const ModeConfig& config);

// A mode from its name and the flags that shape it: --staleness counts for
// ssp only, --local_steps, --participation and --edge_rounds for fedavg
// only (the others ignore them).
absl::StatusOr<ModeConfig> MakeModeConfig(absl::string_view mode, int64_t staleness,
                                          int64_t local_steps = 1, double participation = 1.0,
                                          int64_t edge_rounds = 1);

// How async and ssp shrink the learning rate of a stale gradient:
//   none     lr
//   inverse  lr / (1 + τ)
//   sqrt     lr / sqrt(1 + τ)   (the default; docs/modes.md has the runs)
enum class StalenessScaling { kNone, kInverse, kSqrt };
absl::string_view StalenessScalingName(StalenessScaling s);
absl::StatusOr<StalenessScaling> ParseStalenessScaling(absl::string_view name);
// The factor for a gradient of staleness `tau` (>= 0).
double StalenessFactor(StalenessScaling s, int64_t tau);

// Staleness of applied gradients: how many gradients were applied t versions
// after the version they were computed on. Counts for t in [0, kBuckets-1);
// the last bucket holds everything staler. max() is exact.
class StalenessHistogram {
 public:
  static constexpr int kBuckets = 33;

  // A histogram with these bucket counts (at most kBuckets; missing ones
  // are 0) and this maximum, as a status reports it. INVALID_ARGUMENT for
  // more buckets, a negative count or maximum.
  static absl::StatusOr<StalenessHistogram> FromCounts(const std::vector<int64_t>& counts,
                                                       int64_t max);

  void Record(int64_t staleness, int64_t gradients);

  const std::vector<int64_t>& counts() const { return counts_; }
  int64_t max() const { return max_; }
  int64_t total() const;

 private:
  std::vector<int64_t> counts_ = std::vector<int64_t>(kBuckets, 0);
  int64_t max_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_CONSISTENCY_H_
