#include "hq/divergence_guard.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"

namespace hips {

std::optional<std::string> FirstNonFinite(absl::Span<const float> values, absl::string_view what) {
  // One vectorized pass; only a non-finite run pays for finding where.
  if (MaxAbsBitsOfRun(reinterpret_cast<const char*>(values.data()), values.size()) <
      kNonFiniteBits) {
    return std::nullopt;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::StrCat(what, " is ", values[i], " at float ", i, " of ", values.size());
    }
  }
  return std::nullopt;
}

void DivergenceGuard::NonFinite(const std::string& aggregator,
                                const std::vector<std::string>& workers) {
  for (const std::string& w : workers) ++non_finite_[aggregator][w];
}

std::optional<std::string> DivergenceGuard::EveryGradientNonFinite(const LiveWorkers& live) const {
  size_t workers = 0;
  for (const auto& [aggregator, reported] : live) {
    auto it = non_finite_.find(aggregator);
    if (it == non_finite_.end()) {
      if (!reported.has_value() || !reported->empty()) return std::nullopt;
      continue;  // it reported no worker
    }
    const std::map<std::string, int>& named = it->second;
    auto twice = [&named](const std::string& w) {
      auto n = named.find(w);
      return n != named.end() && n->second >= kReportsToDiverge;
    };
    if (!reported.has_value()) {
      // Not reported yet: it counts with the workers it named.
      for (const auto& [w, n] : named) {
        if (!twice(w)) return std::nullopt;
      }
      workers += named.size();
      continue;
    }
    for (const std::string& w : *reported) {
      if (!twice(w)) return std::nullopt;
    }
    workers += reported->size();
  }
  if (workers == 0) return std::nullopt;
  return absl::StrCat(
      "every live worker's gradients since the last finite update were non-finite (", workers,
      " workers, at least ", kReportsToDiverge, " gradients each)");
}

void DivergenceGuard::Finite(std::shared_ptr<const WeightsSnapshot> applied_to, double loss) {
  non_finite_.clear();
  if (!std::isfinite(loss)) return;
  // A running mean that follows the loss down as training goes and is not
  // pulled far by one batch. Where it is lowest are the best weights the
  // run has shown: the loss of a diverging run climbs, or settles at chance
  // once its units died, long before any value is non-finite, and weights
  // from that stretch would diverge again.
  mean_loss_ = updates_ == 0 ? loss : 0.9 * mean_loss_ + 0.1 * loss;
  ++updates_;
  if (updates_ == 1 || mean_loss_ <= best_mean_loss_) {
    best_mean_loss_ = mean_loss_;
    if (applied_to != nullptr) rollback_point_ = std::move(applied_to);
  }
}

void DivergenceGuard::Reset() {
  non_finite_.clear();
  // Back at the rollback point: the losses of the line that diverged say
  // nothing about the one that starts there.
  mean_loss_ = best_mean_loss_;
}

}  // namespace hips
