#include "services/types/eval_metrics.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hips {

absl::StatusOr<EvalMetrics> ComputeClassificationMetrics(absl::Span<const int64_t> predictions,
                                                         absl::Span<const int64_t> labels,
                                                         int64_t num_classes) {
  if (predictions.size() != labels.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predictions.size(), " predictions for ", labels.size(), " labels"));
  }
  std::vector<int64_t> tp(num_classes), fp(num_classes), fn(num_classes);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t p = predictions[i], y = labels[i];
    if (p < 0 || p >= num_classes || y < 0 || y >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat("class out of [0, ", num_classes, ") at ", i));
    }
    if (p == y) {
      ++correct;
      ++tp[y];
    } else {
      ++fp[p];
      ++fn[y];
    }
  }
  EvalMetrics m;
  m.examples = static_cast<int64_t>(labels.size());
  if (m.examples == 0) return m;
  m.accuracy = static_cast<double>(correct) / m.examples;
  double f1_sum = 0.0;
  int64_t classes = 0;
  for (int64_t c = 0; c < num_classes; ++c) {
    const int64_t denom = 2 * tp[c] + fp[c] + fn[c];
    if (denom == 0) continue;
    f1_sum += 2.0 * tp[c] / denom;
    ++classes;
  }
  m.macro_f1 = classes > 0 ? f1_sum / classes : 0.0;
  return m;
}

std::string DescribeMetrics(const EvalMetrics& m) {
  if (m.regression) return absl::StrFormat("rmse=%.4f r2=%.4f", m.rmse, m.r2);
  return absl::StrFormat("accuracy=%.4f f1=%.4f", m.accuracy, m.macro_f1);
}

absl::StatusOr<EvalMetrics> ComputeRegressionMetrics(absl::Span<const float> predictions,
                                                     absl::Span<const float> targets,
                                                     int64_t examples) {
  if (predictions.size() != targets.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(predictions.size(), " predictions for ", targets.size(), " targets"));
  }
  EvalMetrics m;
  m.regression = true;
  m.examples = examples;
  if (targets.empty()) return m;
  const double n = static_cast<double>(targets.size());
  double mean = 0;
  for (float t : targets) mean += t / n;
  double sse = 0, sst = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const double e = static_cast<double>(predictions[i]) - targets[i];
    const double d = static_cast<double>(targets[i]) - mean;
    sse += e * e;
    sst += d * d;
  }
  m.rmse = std::sqrt(sse / n);
  m.r2 = sst > 0 ? 1.0 - sse / sst : 0.0;
  return m;
}

}  // namespace hips
