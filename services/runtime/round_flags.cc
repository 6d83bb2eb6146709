#include "services/runtime/round_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, lease_ms, 2000,
          "Members' lease: a round stops waiting for a member (an aggregator's worker, HQ's "
          "aggregator) not heard from for this long.");
ABSL_FLAG(int64_t, round_deadline_ms, 0,
          "sync: close a round this long after its first contribution if a quorum arrived (0: "
          "wait for every member; hips local: 20 with --backup_workers).");
