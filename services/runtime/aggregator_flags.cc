#include "services/runtime/aggregator_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, coalesce_ms, 0,
          "async/ssp: an aggregator sums the gradients arriving within this window into one "
          "aggregate (0: each goes on alone).");
ABSL_FLAG(std::string, clip_norm, "off",
          "An aggregator scales a worker gradient whose L2 norm is above this bound down to it "
          "before summing it (bounded influence: docs/security.md): auto (three times the "
          "median of the last 64 gradients' norms, from the 5th on), auto:K (K times it), off "
          "(or 0; the default for now: docs/security.md says why), or a bound.");
ABSL_FLAG(std::string, hq, "",
          "HQ's address, host:port: an aggregator's HQ, the one hips mode and hips status ask.");
