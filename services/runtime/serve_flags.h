#ifndef HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_

#include "absl/status/statusor.h"
#include "services/net/server_gate.h"

// --max_streams and --stream_idle_ms: how much a server (hips-hq,
// hips-aggregator) serves at once (docs/security.md, "Limits").

namespace hips {

// The flags; a usage error (exit code 2) naming the flag for a negative
// value.
ServeLimits ServeLimitsFromFlagsOrExit();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_
