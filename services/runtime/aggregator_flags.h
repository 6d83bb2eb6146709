#ifndef HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

// The aggregator's flags that the hips CLI takes too: --coalesce_ms (hips
// local hands it on) and --hq (hips mode and hips status ask that HQ).
// Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, coalesce_ms);
ABSL_DECLARE_FLAG(std::string, hq);

#endif  // HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
