#include "services/runtime/serve_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/runtime/process_setup.h"

ABSL_FLAG(int, max_streams, 0,
          "Streaming calls (pushes, weight pulls) served at once; more are refused with "
          "RESOURCE_EXHAUSTED (0: four per member this server may have, plus 8).");
ABSL_FLAG(int64_t, stream_idle_ms, 30000,
          "A push stream that delivers no chunk for this long is cancelled and its partial data "
          "dropped (0: never).");

namespace hips {

ServeLimits ServeLimitsFromFlagsOrExit() {
  ServeLimits limits;
  limits.max_streams = absl::GetFlag(FLAGS_max_streams);
  if (limits.max_streams < 0) {
    ExitWithUsageError(absl::StrCat("--max_streams must be >= 0, got ", limits.max_streams));
  }
  const int64_t idle_ms = absl::GetFlag(FLAGS_stream_idle_ms);
  if (idle_ms < 0) ExitWithUsageError(absl::StrCat("--stream_idle_ms must be >= 0, got ", idle_ms));
  limits.stream_idle = idle_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(idle_ms);
  return limits;
}

}  // namespace hips
