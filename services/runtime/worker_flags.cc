#include "services/runtime/worker_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(int64_t, batch_size, 64, "Examples per worker per step.");
ABSL_FLAG(int64_t, step_delay_ms, 0,
          "Straggler injection: a worker sleeps this long after each step (hips local: each of "
          "its --slow_workers).");
