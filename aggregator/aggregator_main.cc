// hips-aggregator: the aggregator tier (MDC). Sums its workers' gradients (per sync round,
// or per coalescing window in async and ssp), forwards the sums to HQ,
// relays HQ's weights to its workers.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "aggregator/aggregator_daemon.h"
#include "glog/logging.h"
#include "services/numeric/parallel.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/serve_flags.h"

ABSL_FLAG(std::string, id, "agg-0", "This aggregator's id (unique in the cluster).");
ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once listening.");
ABSL_FLAG(std::string, unix_socket, "",
          "Also listen on this Unix socket; peers on this host connect to unix:PATH.");
ABSL_FLAG(std::string, hq, "", "HQ address, host:port (required).");
ABSL_FLAG(std::string, advertise_address, "",
          "Where workers and operators reach this aggregator, host:port, told to HQ for hips "
          "status (default --host:port; set it when listening on 0.0.0.0).");
ABSL_FLAG(int, workers, 1, "Workers that contribute to each sync round of this aggregator.");
ABSL_FLAG(int64_t, max_batch_samples, 1 << 16,
          "The most samples one worker gradient may stand for; a push claiming more is "
          "refused.");
ABSL_FLAG(int, max_workers, 0,
          "At most this many workers live here at once; more are refused with "
          "RESOURCE_EXHAUSTED (0: twice --workers, room for a failed peer's workers).");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");
ABSL_FLAG(int, sum_threads, 2,
          "Threads that sum a tensor of 4M floats or more (docs/performance.md).");
ABSL_FLAG(int, quorum, 0,
          "sync: gradients that suffice to close a round at its deadline (0: all workers).");
ABSL_FLAG(int64_t, round_deadline_ms, 0,
          "sync: close a round this long after its first gradient if a quorum arrived "
          "(0: wait for every worker).");
ABSL_FLAG(int64_t, coalesce_ms, 0,
          "async/ssp: sum gradients of one version arriving within this window into one "
          "aggregate (0: forward each gradient alone).");

ABSL_FLAG(int64_t, lease_ms, 2000,
          "Workers' lease: a sync round stops waiting for a worker that has not been heard "
          "from for this long.");

ABSL_FLAG(std::string, metrics_address, "127.0.0.1",
          "Address /metrics listens on (unauthenticated: keep it on loopback unless the "
          "network is yours).");
ABSL_FLAG(int, metrics_port, 0,
          "Serve Prometheus metrics at http://HOST:PORT/metrics; 0 picks a free port (logged, "
          "see --metrics_port_file), -1 serves none.");
ABSL_FLAG(std::string, metrics_port_file, "", "If set, the metrics port is written here.");

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(
      argc, argv,
      {"hips-aggregator",
       "the aggregator tier of hips",
       {{"",
         "hips-aggregator --hq=HOST:PORT --workers=N [--port=P] [--id=ID] [flags]",
         "Sums its workers' gradients (sample-weighted) and forwards one aggregate per round "
         "to HQ;\nrelays HQ's weights to its workers.",
         {},
         {"*"}}}});
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  if (absl::GetFlag(FLAGS_sum_threads) < 1) hips::ExitWithUsageError("--sum_threads must be >= 1");
  hips::SetSummationThreads(absl::GetFlag(FLAGS_sum_threads));
  // Runs until SIGTERM or SIGINT, or until HQ refuses this aggregator's
  // credentials (exit code 1: no retry could get in).
  absl::Mutex mu;
  bool stopping = false;
  absl::Status refused;
  hips::TerminationWatcher watcher([&](int) {
    absl::MutexLock lock(&mu);
    stopping = true;
  });

  hips::AggregatorDaemonOptions options;
  options.aggregator.id = absl::GetFlag(FLAGS_id);
  options.aggregator.expected_workers = absl::GetFlag(FLAGS_workers);
  options.aggregator.max_workers = absl::GetFlag(FLAGS_max_workers);
  options.aggregator.max_batch_samples = absl::GetFlag(FLAGS_max_batch_samples);
  options.aggregator.quorum_workers = absl::GetFlag(FLAGS_quorum);
  if (absl::GetFlag(FLAGS_round_deadline_ms) < 0 || absl::GetFlag(FLAGS_coalesce_ms) < 0) {
    hips::ExitWithUsageError("--round_deadline_ms and --coalesce_ms must be >= 0");
  }
  if (absl::GetFlag(FLAGS_round_deadline_ms) > 0) {
    options.aggregator.round_deadline = absl::Milliseconds(absl::GetFlag(FLAGS_round_deadline_ms));
  }
  options.aggregator.coalesce_window = absl::Milliseconds(absl::GetFlag(FLAGS_coalesce_ms));
  if (absl::GetFlag(FLAGS_lease_ms) <= 0) hips::ExitWithUsageError("--lease_ms must be positive");
  options.aggregator.lease = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ms));
  absl::StatusOr<hips::CompressionOptions> compression = hips::CompressionOptionsFromFlags();
  if (!compression.ok()) hips::ExitWithUsageError(std::string(compression.status().message()));
  options.aggregator.compression = *compression;
  options.host = absl::GetFlag(FLAGS_host);
  options.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  options.port = absl::GetFlag(FLAGS_port);
  options.unix_socket = absl::GetFlag(FLAGS_unix_socket);
  options.hq_address = absl::GetFlag(FLAGS_hq);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.security = hips::SecurityOptionsFromFlagsOrExit();
  options.limits = hips::ServeLimitsFromFlagsOrExit();
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0)
    hips::ExitWithUsageError("--chunk_bytes must be positive");
  options.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  options.link.on_refused = [&](const absl::Status& why) {
    absl::MutexLock lock(&mu);
    refused = why;
    stopping = true;
  };
  if (hips::CheckingFlagsOnly()) {
    hips::ExitAfterFlagCheck(hips::AggregatorDaemon::CheckOptions(options));
  }
  absl::StatusOr<std::unique_ptr<hips::AggregatorDaemon>> daemon =
      hips::AggregatorDaemon::Start(options);
  if (!daemon.ok()) hips::ExitOnStartFailure(daemon.status());
  hips::WritePortFileOrExit(absl::GetFlag(FLAGS_port_file), (*daemon)->port());
  if ((*daemon)->metrics_port() > 0) {
    hips::WritePortFileOrExit(absl::GetFlag(FLAGS_metrics_port_file), (*daemon)->metrics_port());
  }
  mu.LockWhen(absl::Condition(&stopping));
  const absl::Status why = refused;
  mu.Unlock();
  LOG(INFO) << "stopping";
  (*daemon)->Shutdown();
  if (!why.ok()) {
    std::fprintf(stderr, "hips-aggregator: HQ refuses this aggregator: %s\n",
                 why.ToString().c_str());
    return 1;
  }
  return 0;
}
