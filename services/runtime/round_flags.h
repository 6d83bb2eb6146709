#ifndef HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

// The flags of both tiers' rounds (hips-hq, hips-aggregator, and hips,
// whose hips local hands them on): --lease_ms, --round_deadline_ms and
// --clip_norm.
// Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, lease_ms);
ABSL_DECLARE_FLAG(int64_t, round_deadline_ms);
ABSL_DECLARE_FLAG(std::string, clip_norm);

#endif  // HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_
