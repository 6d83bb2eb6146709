#ifndef HIPS_SERVICES_TYPES_IDS_H_
#define HIPS_SERVICES_TYPES_IDS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace hips {

// Longest member id (worker, aggregator) accepted, from a flag or a peer.
inline constexpr size_t kMaxIdLength = 128;

// A member id is 1 to kMaxIdLength characters of [A-Za-z0-9._-]: it names
// files, metric labels and log lines, and with mTLS a certificate's common
// name. INVALID_ARGUMENT naming `field` (and showing the id, escaped and
// cut short) otherwise.
absl::Status ValidateMemberId(absl::string_view id, absl::string_view field);

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_IDS_H_
