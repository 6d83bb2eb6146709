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

// How HQ's buffered rounds (ModeConfig::hq_buffer) weigh an MDC aggregate
// computed τ versions before the version it is applied to:
//   constant    1
//   polynomial  (1 + τ)^-a, a = staleness_exponent (FedBuff's choice)
enum class StalenessWeighting { kConstant, kPolynomial };

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
  // fedavg only (0 otherwise): FedProx. Each local step adds the gradient
  // of mu/2·||w - w_round||², mu·(w - w_round), to the loss's (parameters
  // only), pulling a home's replica back toward the round's weights.
  double proximal_mu = 0;
  // sync and fedavg only (0 otherwise): HQ's consistency across MDCs. 0:
  // HQ's rounds wait for every live MDC, as within an MDC. K > 0: buffered
  // and asynchronous (FedBuff): HQ applies once K MDC aggregates are in,
  // whatever versions they were computed on, each weighted by
  // `staleness_weighting`; an MDC finishes the round it is in before it
  // takes newer weights, so a slow one never holds the others back and its
  // work still counts (docs/noniid.md).
  int64_t hq_buffer = 0;
  StalenessWeighting staleness_weighting = StalenessWeighting::kConstant;
  double staleness_exponent = 0.5;  // polynomial only (0.5 otherwise)

  friend bool operator==(const ModeConfig& a, const ModeConfig& b) {
    return a.mode == b.mode && a.staleness == b.staleness && a.local_steps == b.local_steps &&
           a.participation == b.participation && a.edge_rounds == b.edge_rounds &&
           a.proximal_mu == b.proximal_mu && a.hq_buffer == b.hq_buffer &&
           a.staleness_weighting == b.staleness_weighting &&
           a.staleness_exponent == b.staleness_exponent;
  }
  friend bool operator!=(const ModeConfig& a, const ModeConfig& b) { return !(a == b); }
};

// Largest --staleness accepted (far beyond any useful bound).
inline constexpr int64_t kMaxStaleness = 1 << 20;
// Largest --local_steps accepted.
inline constexpr int64_t kMaxLocalSteps = 100000;
// Largest --edge_rounds accepted.
inline constexpr int64_t kMaxEdgeRounds = 1000;
// Largest --proximal_mu accepted (with any useful learning rate far past
// the point where the proximal term alone would make a step diverge).
inline constexpr double kMaxProximalMu = 1000;
// Largest --hq_buffer and --staleness_exponent accepted.
inline constexpr int64_t kMaxHqBuffer = 4096;
inline constexpr double kMaxStalenessExponent = 10;

absl::string_view ModeName(Mode mode);  // "sync", "async", "ssp", "fedavg"
absl::StatusOr<Mode> ParseMode(absl::string_view name);
absl::string_view StalenessWeightingName(StalenessWeighting w);  // "constant", "polynomial"
absl::StatusOr<StalenessWeighting> ParseStalenessWeighting(absl::string_view name);
// The weight of an aggregate of staleness `tau` (>= 0) under `mode`'s
// weighting: 1, or (1 + tau)^-staleness_exponent.
double StalenessWeight(const ModeConfig& mode, int64_t tau);

// "sync", "async", "ssp(2)", "fedavg(H=10)", "fedavg(H=10,F=0.5)",
// "fedavg(H=10,F=0.5,E=4)", with FedProx "fedavg(H=10,mu=0.01)", and with
// HQ's buffer "sync(B=3)", "fedavg(H=10,B=3,poly=0.5)".
std::string DescribeMode(const ModeConfig& config);

// INVALID_ARGUMENT unless staleness is in [0, kMaxStaleness] for ssp and 0
// for the other modes; for fedavg local_steps is in [1, kMaxLocalSteps],
// participation in (0, 1], edge_rounds in [1, kMaxEdgeRounds] and
// proximal_mu in [0, kMaxProximalMu] (1, 1.0, 1 and 0 for the other modes);
// hq_buffer in [0, kMaxHqBuffer] (0 but for sync and fedavg), and with a
// polynomial weighting (only with a buffer) staleness_exponent in (0,
// kMaxStalenessExponent] (0.5 otherwise).
absl::Status ValidateModeConfig(const ModeConfig& config);

// What shapes a mode besides its name (the flags of the same names); each
// counts only for the modes it applies to.
struct ModeKnobs {
  int64_t staleness = 0;                                                   // ssp
  int64_t local_steps = 1;                                                 // fedavg
  double participation = 1.0;                                              // fedavg
  int64_t edge_rounds = 1;                                                 // fedavg
  double proximal_mu = 0;                                                  // fedavg
  int64_t hq_buffer = 0;                                                   // sync, fedavg
  StalenessWeighting staleness_weighting = StalenessWeighting::kConstant;  // with hq_buffer
  double staleness_exponent = 0.5;  // with a polynomial weighting
};

// A mode from its name and the knobs that shape it (the others ignored),
// checked.
absl::StatusOr<ModeConfig> MakeModeConfig(absl::string_view mode, const ModeKnobs& knobs);
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
