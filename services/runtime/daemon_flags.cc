#include "services/runtime/daemon_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "services/numeric/chunk_codec.h"

ABSL_FLAG(int, chunk_bytes, static_cast<int>(hips::kDefaultChunkBytes),
          "Payload bytes per streamed tensor chunk (a multiple of 4, at most 64 MiB).");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1",
          "Address /metrics listens on (unauthenticated: keep it on loopback unless the "
          "network is yours).");
ABSL_FLAG(int, metrics_port, 0,
          "Serve Prometheus metrics at http://HOST:PORT/metrics; 0 picks a free port (logged, "
          "see --metrics_port_file), -1 serves none.");
ABSL_FLAG(std::string, metrics_port_file, "", "If set, the metrics port is written here.");

namespace hips {

void SetMetricsFromFlags(ServeOptions* o) {
  o->metrics_address = absl::GetFlag(FLAGS_metrics_address);
  o->metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o->metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
}

}  // namespace hips
