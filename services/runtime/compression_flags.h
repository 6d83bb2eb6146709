#ifndef HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "services/numeric/compression.h"

// --compression, --topk_ratio and --error_feedback: how a sender (worker or
// aggregator) encodes the gradients it pushes on its hop.
ABSL_DECLARE_FLAG(std::string, compression);
ABSL_DECLARE_FLAG(double, topk_ratio);
ABSL_DECLARE_FLAG(bool, error_feedback);

namespace hips {

absl::StatusOr<CompressionOptions> CompressionOptionsFromFlags();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_
