#ifndef HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/numeric/compression.h"

// --compression, --topk_ratio and --error_feedback: how a sender (worker or
// aggregator) encodes the gradients it pushes on its hop.

namespace hips {

absl::StatusOr<CompressionOptions> CompressionOptionsFromFlags();

// The same flags as arguments for a child daemon (hips local).
std::vector<std::string> CompressionFlagsAsArgs();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_COMPRESSION_FLAGS_H_
