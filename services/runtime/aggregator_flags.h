#ifndef HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"

// The aggregator's flags that the hips CLI takes too: --coalesce_ms and
// the bounded influence ones (--max_samples_per_push,
// --robust, --trim_fraction, --quarantine_ms; hips local hands them on) and --hq (hips mode
// and hips status ask that HQ).
// Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, coalesce_ms);
ABSL_DECLARE_FLAG(std::string, hq);
ABSL_DECLARE_FLAG(std::string, max_samples_per_push);
ABSL_DECLARE_FLAG(std::string, robust);
ABSL_DECLARE_FLAG(double, trim_fraction);
ABSL_DECLARE_FLAG(int64_t, quarantine_ms);

#endif  // HIPS_SERVICES_RUNTIME_AGGREGATOR_FLAGS_H_
