// hips-hq: the HQ tier (NPDC). Owns the master weights and the optimizer, turns
// aggregates into versions (sync, async or ssp), broadcasts weights,
// evaluates on the test set, serves the admin API (SetMode).

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "hq/hq_daemon.h"
#include "services/numeric/parallel.h"
#include "services/runtime/fedavg_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/serve_flags.h"
#include "services/runtime/training_flags.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once listening.");
ABSL_FLAG(std::string, unix_socket, "",
          "Also listen on this Unix socket; peers on this host connect to unix:PATH.");
ABSL_FLAG(int, aggregators, 1, "Aggregators that contribute to each sync round.");
ABSL_FLAG(int, max_workers, 0,
          "The most workers the cluster has: an aggregate listing more contributors is refused "
          "(0: no bound but the protocol's, 65536).");
ABSL_FLAG(int64_t, max_batch_samples, 1 << 16,
          "The most samples one worker gradient may stand for; an aggregate of n gradients "
          "claiming more than n times this is refused.");
ABSL_FLAG(int, max_aggregators, 0,
          "At most this many aggregators live at once; more are refused with "
          "RESOURCE_EXHAUSTED (0: --aggregators).");
ABSL_FLAG(int64_t, max_versions, 0, "Training budget in versions (0: no version budget).");
ABSL_FLAG(int64_t, max_samples, 0,
          "Training budget in applied samples (0: none). The learning-rate schedule runs over "
          "it when set, else over --max_versions.");
ABSL_FLAG(std::string, mode, "sync", "Consistency mode at start: sync, async, ssp or fedavg.");
ABSL_FLAG(int64_t, staleness, 2, "ssp: largest staleness (in versions) of an applied gradient.");
ABSL_FLAG(int, quorum, 0,
          "sync: aggregates that suffice to close a round at its deadline (0: all).");
ABSL_FLAG(int64_t, round_deadline_ms, 0,
          "sync: close a round this long after its first aggregate if a quorum arrived "
          "(0: wait for every aggregator).");
ABSL_FLAG(int64_t, async_lr_batch, 0,
          "async/ssp: an update of n samples uses lr*n/N with N this value, so the learning "
          "rate keeps its per-sample meaning across modes (0: no scaling).");
ABSL_FLAG(double, async_momentum, 0.5,
          "async/ssp with SGD: momentum of their updates when below --momentum (asynchrony "
          "adds momentum of its own); the rate is scaled to keep lr/(1-momentum). -1: off.");
ABSL_FLAG(std::string, staleness_lr, "sqrt",
          "async/ssp: shrink a stale gradient's learning rate: none, inverse (lr/(1+staleness)) "
          "or sqrt (lr/sqrt(1+staleness)).");
ABSL_FLAG(int64_t, eval_every, 100, "Evaluate on the test set every N versions (0: final only).");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");
ABSL_FLAG(int, sum_threads, 2,
          "Threads that sum a tensor of 4M floats or more (docs/performance.md).");

ABSL_FLAG(int64_t, lease_ms, 2000,
          "Aggregators' lease: a sync round stops waiting for an aggregator that has not been "
          "heard from for this long.");

ABSL_FLAG(std::string, checkpoint_dir, "",
          "Write checkpoints here and, on start, resume from the newest valid one (empty: no "
          "checkpoints).");
ABSL_FLAG(int64_t, checkpoint_every_versions, 100,
          "Checkpoint every N versions (0: not by count).");
ABSL_FLAG(double, checkpoint_every_s, 30,
          "Checkpoint at least this often, in seconds (0: not by time).");
ABSL_FLAG(int, checkpoint_keep, 3, "Checkpoints kept (the newest).");
ABSL_FLAG(bool, resume, true, "Resume from the newest valid checkpoint in --checkpoint_dir.");
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
      {"hips-hq",
       "the HQ tier of hips",
       {{"",
         "hips-hq --aggregators=A [--max_versions=V] [--port=P] [model flags]",
         "Owns the master weights and the optimizer: applies the aggregators' sums, publishes\n"
         "each version, checkpoints and evaluates on the test set.",
         {},
         {"*"}}}});
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  if (absl::GetFlag(FLAGS_sum_threads) < 1) hips::ExitWithUsageError("--sum_threads must be >= 1");
  hips::SetSummationThreads(absl::GetFlag(FLAGS_sum_threads));
  absl::Notification stop;
  hips::TerminationWatcher watcher([&stop](int) { stop.Notify(); });
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));

  hips::HqDaemonOptions options;
  options.server.expected_aggregators = absl::GetFlag(FLAGS_aggregators);
  options.server.max_aggregators = absl::GetFlag(FLAGS_max_aggregators);
  options.server.max_workers = absl::GetFlag(FLAGS_max_workers);
  options.server.max_batch_samples = absl::GetFlag(FLAGS_max_batch_samples);
  options.server.max_versions = absl::GetFlag(FLAGS_max_versions);
  options.server.max_samples = absl::GetFlag(FLAGS_max_samples);
  absl::StatusOr<hips::ModeConfig> mode =
      hips::ModeConfigFromFlags(absl::GetFlag(FLAGS_mode), absl::GetFlag(FLAGS_staleness));
  if (!mode.ok()) hips::ExitWithUsageError(std::string(mode.status().message()));
  options.server.mode = *mode;
  absl::StatusOr<hips::ServerStepFlags> server_step = hips::ServerStepFromFlags();
  if (!server_step.ok()) hips::ExitWithUsageError(std::string(server_step.status().message()));
  options.server.server_lr = server_step->lr;
  options.server.server_momentum = server_step->momentum;
  absl::StatusOr<std::optional<hips::WeightsChainOptions>> weights_compression =
      hips::WeightsCompressionFromFlags();
  if (!weights_compression.ok()) {
    hips::ExitWithUsageError(std::string(weights_compression.status().message()));
  }
  options.weights_compression = *weights_compression;
  options.server.quorum_aggregators = absl::GetFlag(FLAGS_quorum);
  if (absl::GetFlag(FLAGS_round_deadline_ms) < 0) {
    hips::ExitWithUsageError("--round_deadline_ms must be >= 0");
  }
  if (absl::GetFlag(FLAGS_round_deadline_ms) > 0) {
    options.server.round_deadline = absl::Milliseconds(absl::GetFlag(FLAGS_round_deadline_ms));
  }
  options.server.lr_reference_samples = absl::GetFlag(FLAGS_async_lr_batch);
  if (absl::GetFlag(FLAGS_lease_ms) <= 0) hips::ExitWithUsageError("--lease_ms must be positive");
  options.server.lease = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ms));
  if (absl::GetFlag(FLAGS_checkpoint_every_versions) < 0 ||
      !(absl::GetFlag(FLAGS_checkpoint_every_s) >= 0)) {
    hips::ExitWithUsageError("--checkpoint_every_versions and --checkpoint_every_s must be >= 0");
  }
  options.server.checkpoint_every_versions = absl::GetFlag(FLAGS_checkpoint_every_versions);
  options.server.checkpoint_every = absl::Seconds(absl::GetFlag(FLAGS_checkpoint_every_s));
  options.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  options.checkpoint_keep = absl::GetFlag(FLAGS_checkpoint_keep);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.security = hips::SecurityOptionsFromFlagsOrExit();
  options.limits = hips::ServeLimitsFromFlagsOrExit();
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  absl::StatusOr<hips::StalenessScaling> scaling =
      hips::ParseStalenessScaling(absl::GetFlag(FLAGS_staleness_lr));
  if (!scaling.ok()) hips::ExitWithUsageError(std::string(scaling.status().message()));
  options.server.staleness_lr = *scaling;
  options.server.async_momentum = absl::GetFlag(FLAGS_async_momentum);
  options.model = hips::ModelOptionsFromFlags();
  options.optimizer = hips::OptimizerOptionsFromFlags();
  options.data = hips::DataOptionsFromFlagsOrExit();
  options.seed = absl::GetFlag(FLAGS_seed);
  options.eval_every = absl::GetFlag(FLAGS_eval_every);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.unix_socket = absl::GetFlag(FLAGS_unix_socket);
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0)
    hips::ExitWithUsageError("--chunk_bytes must be positive");
  options.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  if (hips::CheckingFlagsOnly()) hips::ExitAfterFlagCheck(hips::HqDaemon::CheckOptions(options));

  absl::StatusOr<std::unique_ptr<hips::HqDaemon>> daemon = hips::HqDaemon::Start(options);
  if (!daemon.ok()) hips::ExitOnStartFailure(daemon.status());
  hips::WritePortFileOrExit(absl::GetFlag(FLAGS_port_file), (*daemon)->port());
  if ((*daemon)->metrics_port() > 0) {
    hips::WritePortFileOrExit(absl::GetFlag(FLAGS_metrics_port_file), (*daemon)->metrics_port());
  }
  stop.WaitForNotification();
  LOG(INFO) << "stopping at version " << (*daemon)->server().status().version;
  (*daemon)->Shutdown();
  return 0;
}
