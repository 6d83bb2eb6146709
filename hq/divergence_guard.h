#ifndef HIPS_HQ_DIVERGENCE_GUARD_H_
#define HIPS_HQ_DIVERGENCE_GUARD_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/types/payloads.h"

// HQ's watch over a diverging run: the non-finite gradients since the last
// finite update and the weights to roll back to (docs/faults.md,
// "Divergence"; what HQ then does: services/types/divergence.h).

namespace hips {

// The first non-finite value of `values` as a reason ("<what> is non-finite
// at float i"), or nothing if all are finite.
std::optional<std::string> FirstNonFinite(absl::Span<const float> values, absl::string_view what);

// HQ's record of non-finite gradients and of the weights to roll back to.
// Not thread-safe: HQ calls it under the lock that serializes training.
class DivergenceGuard {
 public:
  // Gradients of `workers` that reached `aggregator` were refused as
  // non-finite (by the aggregator, or by HQ in its aggregate).
  void NonFinite(const std::string& aggregator, const std::vector<std::string>& workers);
  // Whether, since the last finite update, every live worker's gradients
  // were non-finite, at least kReportsToDiverge of them each (one batch
  // that overflows is bad luck; the same worker again on the next version
  // is the weights): `live` maps each live aggregator to the workers it
  // reports (nullopt: it has not reported yet; it counts with the workers
  // it named). An aggregator speaks for its own workers only. The reason,
  // if so.
  static constexpr int kReportsToDiverge = 2;
  using LiveWorkers = std::map<std::string, std::optional<std::vector<std::string>>>;
  std::optional<std::string> EveryGradientNonFinite(const LiveWorkers& live) const;

  // A finite update was applied to the weights `applied_to` (whose
  // gradients' mean loss was `loss`): the non-finite counts start over, and
  // `applied_to` becomes the weights to roll back to if the running mean of
  // the loss (0.9/0.1) is as low as it has ever been.
  void Finite(std::shared_ptr<const WeightsSnapshot> applied_to, double loss);
  // The best weights so far (null before the first finite update).
  const std::shared_ptr<const WeightsSnapshot>& rollback_point() const { return rollback_point_; }
  // After a rollback: the counts start over, and so does the running mean,
  // from its value at the rollback point.
  void Reset();

  double mean_loss() const { return mean_loss_; }
  double best_mean_loss() const { return best_mean_loss_; }

 private:
  // aggregator -> worker -> non-finite gradients since the last finite
  // update.
  std::map<std::string, std::map<std::string, int>> non_finite_;
  std::shared_ptr<const WeightsSnapshot> rollback_point_;
  double mean_loss_ = 0;  // exponential, over finite updates' losses
  double best_mean_loss_ = 0;
  int64_t updates_ = 0;
};

}  // namespace hips

#endif  // HIPS_HQ_DIVERGENCE_GUARD_H_
