#ifndef HIPS_SERVICES_RUNTIME_DAEMON_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_DAEMON_FLAGS_H_

#include "absl/flags/declare.h"
#include "services/net/daemon_server.h"

// The flags every daemon takes (hips-hq, hips-aggregator, hips-worker):
// --chunk_bytes, and its /metrics endpoint (--metrics_address,
// --metrics_port, --metrics_port_file). Only main()s link this.
ABSL_DECLARE_FLAG(int, chunk_bytes);

namespace hips {

// The metrics flags into `options`.
void SetMetricsFromFlags(ServeOptions* options);

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_DAEMON_FLAGS_H_
