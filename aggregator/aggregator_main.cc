// hips-aggregator: the MDC tier. Sums its workers' gradients per round,
// forwards one aggregate per round to HQ, relays HQ's weights to its workers.

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "aggregator/aggregator_daemon.h"
#include "glog/logging.h"
#include "services/runtime/process_setup.h"

ABSL_FLAG(std::string, id, "agg-0", "This aggregator's id (unique in the cluster).");
ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once listening.");
ABSL_FLAG(std::string, hq, "", "HQ address, host:port (required).");
ABSL_FLAG(int, workers, 1, "Workers that contribute to each sync round of this aggregator.");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(
      argc, argv, "hips-aggregator --hq=HOST:PORT --workers=N [--port=P] [--id=ID]");
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  absl::Notification stop;
  hips::TerminationWatcher watcher([&stop](int) { stop.Notify(); });

  hips::AggregatorDaemonOptions options;
  options.aggregator.id = absl::GetFlag(FLAGS_id);
  options.aggregator.expected_workers = absl::GetFlag(FLAGS_workers);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.hq_address = absl::GetFlag(FLAGS_hq);
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0) hips::ExitWithUsageError("--chunk_bytes must be positive");
  options.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  absl::StatusOr<std::unique_ptr<hips::AggregatorDaemon>> daemon =
      hips::AggregatorDaemon::Start(options);
  if (!daemon.ok()) hips::ExitOnStartFailure(daemon.status());
  hips::WritePortFileOrExit(absl::GetFlag(FLAGS_port_file), (*daemon)->port());
  stop.WaitForNotification();
  LOG(INFO) << "stopping";
  (*daemon)->Shutdown();
  return 0;
}
