#include "services/runtime/round_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, lease_ms, 2000,
          "Members' lease: a round stops waiting for a member (an aggregator's worker, HQ's "
          "aggregator) not heard from for this long.");
ABSL_FLAG(int64_t, round_deadline_ms, 0,
          "sync: close a round this long after its first contribution if a quorum arrived (0: "
          "wait for every member; hips local: 20 with --backup_workers).");
ABSL_FLAG(std::string, clip_norm, "off",
          "A tier scales a contribution whose L2 norm per sample is above this bound down to it "
          "before summing it (an aggregator its workers' gradients, HQ its aggregates; bounded "
          "influence: docs/security.md): auto (three times the median of the last 64 norms, "
          "from the 5th on), auto:K (K times it), off (or 0; the default for now: "
          "docs/security.md says why), or a bound.");
