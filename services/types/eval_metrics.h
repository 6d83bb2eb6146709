#ifndef HIPS_SERVICES_TYPES_EVAL_METRICS_H_
#define HIPS_SERVICES_TYPES_EVAL_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace hips {

// How well a model does on a test set: accuracy and macro-F1 for a
// classifier (--loss=cross_entropy), RMSE and R² for a regression
// (--loss=mse).
struct EvalMetrics {
  double accuracy = 0.0;  // fraction in [0, 1]
  double macro_f1 = 0.0;  // fraction in [0, 1]
  int64_t examples = 0;
  bool regression = false;
  double rmse = 0.0;  // root of the mean squared error over every target value
  double r2 = 0.0;    // 1 - SSE / the targets' sum of squares about their mean (<= 1)
};

// Accuracy and macro-F1 (the unweighted mean over classes of
// 2·TP / (2·TP + FP + FN)). A class that appears neither in the labels nor in
// the predictions has no F1 and is left out of the mean. INVALID_ARGUMENT when
// the spans differ in size or hold a class outside [0, num_classes).
absl::StatusOr<EvalMetrics> ComputeClassificationMetrics(absl::Span<const int64_t> predictions,
                                                         absl::Span<const int64_t> labels,
                                                         int64_t num_classes);

// "accuracy=0.8812 f1=0.8790", or for a regression "rmse=0.1234 r2=0.9876".
std::string DescribeMetrics(const EvalMetrics& m);

// RMSE and R² of `predictions` against `targets` (as many values, any
// number per example: `examples` of them). R² compares the squared error
// with that of predicting every value's mean (1 - SSE/SST; 0 when the
// targets are all equal). INVALID_ARGUMENT when the sizes differ.
absl::StatusOr<EvalMetrics> ComputeRegressionMetrics(absl::Span<const float> predictions,
                                                     absl::Span<const float> targets,
                                                     int64_t examples);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_EVAL_METRICS_H_
