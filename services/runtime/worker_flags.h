#ifndef HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_

#include <cstdint>

#include "absl/flags/declare.h"

// The worker's flags that hips local hands on: --batch_size and
// --step_delay_ms. Only main()s link this.
ABSL_DECLARE_FLAG(int64_t, batch_size);
ABSL_DECLARE_FLAG(int64_t, step_delay_ms);

#endif  // HIPS_SERVICES_RUNTIME_WORKER_FLAGS_H_
