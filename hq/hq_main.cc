// hips-hq: the NPDC tier. Owns the master weights and the optimizer, applies
// one update per sync round, broadcasts weights, evaluates on the test set.

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "hq/hq_daemon.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/training_flags.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once listening.");
ABSL_FLAG(int, aggregators, 1, "Aggregators that contribute to each sync round.");
ABSL_FLAG(int64_t, max_versions, 0, "Training budget in versions (0: train until stopped).");
ABSL_FLAG(int64_t, eval_every, 100, "Evaluate on the test set every N versions (0: final only).");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(
      argc, argv, "hips-hq --aggregators=A [--max_versions=V] [--port=P] [model flags]");
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  absl::Notification stop;
  hips::TerminationWatcher watcher([&stop](int) { stop.Notify(); });
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));

  hips::HqDaemonOptions options;
  options.server.expected_aggregators = absl::GetFlag(FLAGS_aggregators);
  options.server.max_versions = absl::GetFlag(FLAGS_max_versions);
  options.model = hips::ModelOptionsFromFlags();
  options.optimizer = hips::OptimizerOptionsFromFlags();
  options.data = hips::DataOptionsFromFlags();
  options.seed = absl::GetFlag(FLAGS_seed);
  options.eval_every = absl::GetFlag(FLAGS_eval_every);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0) hips::ExitWithUsageError("--chunk_bytes must be positive");
  options.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));

  absl::StatusOr<std::unique_ptr<hips::HqDaemon>> daemon = hips::HqDaemon::Start(options);
  if (!daemon.ok()) hips::ExitOnStartFailure(daemon.status());
  hips::WritePortFileOrExit(absl::GetFlag(FLAGS_port_file), (*daemon)->port());
  stop.WaitForNotification();
  LOG(INFO) << "stopping at version " << (*daemon)->server().status().version;
  (*daemon)->Shutdown();
  return 0;
}
