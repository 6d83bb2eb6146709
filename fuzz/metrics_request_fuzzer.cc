// The metrics endpoint's HTTP request parser (RouteMetricsRequest), which
// sees whatever reaches the /metrics port: only a GET of /metrics is
// answered with the metrics.

#include <cstdint>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "services/metrics/metrics_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view request(reinterpret_cast<const char*>(data), size);
  const hips::MetricsRoute route = hips::RouteMetricsRequest(request);
  if (route == hips::MetricsRoute::kMetrics && !absl::StartsWith(request, "GET /metrics")) {
    std::abort();
  }
  if (route != hips::MetricsRoute::kBadRequest && !absl::StartsWith(request, "GET ")) std::abort();
  return 0;
}
