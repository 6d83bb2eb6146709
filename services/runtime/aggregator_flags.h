#ifndef HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

// The aggregator's flags that the hips CLI takes too: --coalesce_ms and
// --clip_norm (hips local hands them on) and --hq (hips mode and hips
// status ask that HQ).
// Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, coalesce_ms);
ABSL_DECLARE_FLAG(std::string, hq);
ABSL_DECLARE_FLAG(std::string, clip_norm);

#endif  // HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
