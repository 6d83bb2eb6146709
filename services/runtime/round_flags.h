#ifndef HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_

#include <cstdint>

#include "absl/flags/declare.h"

// The flags of both tiers' rounds (hips-hq, hips-aggregator, and hips,
// whose hips local hands them on): --lease_ms and --round_deadline_ms.
// Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, lease_ms);
ABSL_DECLARE_FLAG(int64_t, round_deadline_ms);

#endif  // HIPS_SERVICES_RUNTIME_ROUND_FLAGS_H_
