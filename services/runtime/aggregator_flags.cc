#include "services/runtime/aggregator_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, coalesce_ms, 0,
          "async/ssp: an aggregator sums the gradients arriving within this window into one "
          "aggregate (0: each goes on alone).");
ABSL_FLAG(std::string, hq, "",
          "HQ's address, host:port: an aggregator's HQ, the one hips mode and hips status ask.");
