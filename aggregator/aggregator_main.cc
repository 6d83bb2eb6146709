// hips-aggregator: the aggregator tier (MDC). Sums its workers' gradients (per sync round,
// or per coalescing window in async and ssp), forwards the sums to HQ,
// relays HQ's weights to its workers.

#include <algorithm>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "aggregator/aggregator_daemon.h"
#include "services/runtime/aggregator_flags.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/daemon_flags.h"
#include "services/runtime/daemon_runner.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/round_flags.h"
#include "services/runtime/serve_flags.h"

ABSL_FLAG(std::string, id, "agg-0", "This aggregator's id (unique in the cluster).");
ABSL_FLAG(std::string, advertise_address, "",
          "Where workers and operators reach this aggregator, host:port, told to HQ for hips "
          "status (default --host:port; set it when listening on 0.0.0.0).");
ABSL_FLAG(int, min_homes, 0,
          "The quorum of homes that opens this aggregator's first round: it waits for this many "
          "to join; after it, a round is over the homes live when it opens (and drawn), and one "
          "that joins takes part from the next (docs/modes.md, \"Elastic membership\"). 0: "
          "--workers.");
ABSL_FLAG(int, workers, 1, "The old name of --min_homes (used when --min_homes is 0).");

namespace {

// The default room for homes beyond the quorum (--max_workers 0).
constexpr int kElasticHomes = 1024;

hips::AggregatorDaemonOptions OptionsFromFlags() {
  hips::AggregatorDaemonOptions o;
  hips::AggregatorOptions& a = o.aggregator;
  a.id = absl::GetFlag(FLAGS_id);
  if (absl::GetFlag(FLAGS_min_homes) < 0) {
    hips::ExitWithUsageError(
        absl::StrCat("--min_homes must be >= 0, got ", absl::GetFlag(FLAGS_min_homes)));
  }
  a.expected_workers = absl::GetFlag(FLAGS_min_homes) > 0 ? absl::GetFlag(FLAGS_min_homes)
                                                          : absl::GetFlag(FLAGS_workers);
  a.max_workers = absl::GetFlag(FLAGS_max_workers);
  // Homes may join at any time: room for more than the quorum.
  if (a.max_workers == 0) a.max_workers = std::max(2 * a.expected_workers, kElasticHomes);
  a.max_batch_samples = absl::GetFlag(FLAGS_max_batch_samples);
  a.quorum_workers = absl::GetFlag(FLAGS_quorum);
  const int64_t deadline_ms = absl::GetFlag(FLAGS_round_deadline_ms);
  a.round_deadline = deadline_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(deadline_ms);
  a.coalesce_window = absl::Milliseconds(absl::GetFlag(FLAGS_coalesce_ms));
  absl::StatusOr<hips::ClipNorm> clip = hips::ParseClipNorm(absl::GetFlag(FLAGS_clip_norm));
  if (!clip.ok()) hips::ExitWithUsageError(std::string(clip.status().message()));
  a.clip_norm = *clip;
  absl::StatusOr<hips::ClipNorm> cap =
      hips::ParseRunningBound(absl::GetFlag(FLAGS_max_samples_per_push), "--max_samples_per_push",
                              hips::kSampleCapMultiple);
  if (!cap.ok()) hips::ExitWithUsageError(std::string(cap.status().message()));
  a.max_samples_per_push = *cap;
  absl::StatusOr<hips::RobustMean::Kind> robust = hips::ParseRobust(absl::GetFlag(FLAGS_robust));
  if (!robust.ok()) hips::ExitWithUsageError(std::string(robust.status().message()));
  a.robust = {*robust, absl::GetFlag(FLAGS_trim_fraction)};
  if (absl::Status s = hips::ValidateQuarantineMs(absl::GetFlag(FLAGS_quarantine_ms)); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  a.quarantine = absl::Milliseconds(absl::GetFlag(FLAGS_quarantine_ms));
  if (absl::Status s = hips::ValidateTrimFraction(a.robust.trim_fraction); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  a.lease = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ms));
  absl::StatusOr<hips::CompressionOptions> compression = hips::CompressionOptionsFromFlags();
  if (!compression.ok()) hips::ExitWithUsageError(std::string(compression.status().message()));
  a.compression = *compression;
  o.serve = hips::ServeOptionsFromFlags();
  o.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  o.hq_address = absl::GetFlag(FLAGS_hq);
  o.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  o.sum_threads = absl::GetFlag(FLAGS_sum_threads);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  hips::InitDaemonProcess(
      argc, argv,
      {"hips-aggregator",
       "the aggregator tier of hips",
       {{"",
         "hips-aggregator --hq=HOST:PORT --workers=N [--port=P] [--id=ID] [flags]",
         "Sums its workers' gradients (sample-weighted) and forwards one aggregate per round "
         "to HQ;\nrelays HQ's weights to its workers.",
         {},
         {"*"}}}});
  // Runs until SIGTERM or SIGINT, or until HQ refuses this aggregator's
  // credentials (exit code 1: no retry could get in).
  hips::DaemonRunner runner;
  return runner.Run<hips::AggregatorDaemon>(
      OptionsFromFlags(), [](hips::AggregatorDaemon&) { LOG(INFO) << "stopping"; });
}
