#ifndef HIPS_SERVICES_CORE_CLASSIFICATION_METRICS_H_
#define HIPS_SERVICES_CORE_CLASSIFICATION_METRICS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace hips {

struct ClassificationMetrics {
  double accuracy = 0.0;  // fraction in [0, 1]
  double macro_f1 = 0.0;  // fraction in [0, 1]
  int64_t examples = 0;
};

// Accuracy and macro-F1 (the unweighted mean over classes of
// 2·TP / (2·TP + FP + FN)). A class that appears neither in the labels nor in
// the predictions has no F1 and is left out of the mean. INVALID_ARGUMENT when
// the spans differ in size or hold a class outside [0, num_classes).
absl::StatusOr<ClassificationMetrics> ComputeClassificationMetrics(
    absl::Span<const int64_t> predictions, absl::Span<const int64_t> labels, int64_t num_classes);

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_CLASSIFICATION_METRICS_H_
