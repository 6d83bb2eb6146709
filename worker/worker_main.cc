// hips-worker: the worker tier ("home model"). Computes gradients of its data shard on
// the weights its aggregator relays and pushes them back.

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/training_flags.h"
#include "worker/worker_daemon.h"

ABSL_FLAG(std::string, id, "", "This worker's id (default worker-<index>).");
ABSL_FLAG(std::vector<std::string>, aggregator, {},
          "Aggregator addresses, host:port, comma-separated (required): the first is this "
          "worker's own, the others are where it fails over to (docs/faults.md).");
ABSL_FLAG(bool, aggregator_by_index, false,
          "Every worker has the same --aggregator list (a Kubernetes Job): this worker's own "
          "is entry --index mod N, the ones after it (wrapping) are where it fails over to.");
ABSL_FLAG(int, index, 0, "This worker's shard index in [0, --workers).");
ABSL_FLAG(int, workers, 1, "Number of workers (shards) in the cluster.");
ABSL_FLAG(int64_t, batch_size, 64, "Examples per gradient.");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");
ABSL_FLAG(double, slowdown, 1.0,
          "Straggler injection: make each step take this many times as long (>= 1).");
ABSL_FLAG(int64_t, step_delay_ms, 0, "Straggler injection: sleep this long after each step.");

ABSL_FLAG(std::string, metrics_address, "127.0.0.1",
          "Address /metrics listens on (unauthenticated: keep it on loopback unless the "
          "network is yours).");
ABSL_FLAG(int, metrics_port, 0,
          "Serve Prometheus metrics at http://HOST:PORT/metrics; 0 picks a free port (logged, "
          "see --metrics_port_file), -1 serves none.");
ABSL_FLAG(std::string, metrics_port_file, "", "If set, the metrics port is written here.");
ABSL_FLAG(int, health_port, -1,
          "Serve the gRPC health service (grpc.health.v1, for hips health and container "
          "probes) on --metrics_address:PORT; 0 picks a free port (see --health_port_file), "
          "-1 serves none. SERVING once the worker computes on weights.");
ABSL_FLAG(std::string, health_port_file, "", "If set, the health port is written here.");

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(
      argc, argv,
      {"hips-worker",
       "the worker tier of hips",
       {{"",
         "hips-worker --aggregator=HOST:PORT[,HOST:PORT...] --index=K --workers=W [model flags]",
         "Computes gradients of its shard of the training data on the weights its aggregator\n"
         "relays, and pushes them back.",
         {},
         {"*"}}}});
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  const std::vector<std::string> aggregators = absl::GetFlag(FLAGS_aggregator);
  if (aggregators.empty()) hips::ExitWithUsageError("--aggregator is required");
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0 || absl::GetFlag(FLAGS_chunk_bytes) % 4 != 0) {
    hips::ExitWithUsageError("--chunk_bytes must be a positive multiple of 4");
  }
  // Until the daemon exists a signal simply ends the process; afterwards it
  // stops the worker's loop.
  std::atomic<hips::WorkerDaemon*> running{nullptr};
  hips::TerminationWatcher watcher([&running](int sig) {
    if (hips::WorkerDaemon* d = running.load()) {
      d->Shutdown();
    } else {
      _exit(128 + sig);
    }
  });
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));

  hips::WorkerDaemonOptions options;
  options.aggregators = aggregators;
  if (absl::GetFlag(FLAGS_aggregator_by_index) && absl::GetFlag(FLAGS_index) >= 0) {
    options.aggregators = hips::AggregatorsByIndex(aggregators, absl::GetFlag(FLAGS_index));
  }
  options.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  hips::WorkerOptions& worker = options.worker;
  worker.index = absl::GetFlag(FLAGS_index);
  worker.num_workers = absl::GetFlag(FLAGS_workers);
  worker.id = absl::GetFlag(FLAGS_id).empty() ? absl::StrCat("worker-", worker.index)
                                              : absl::GetFlag(FLAGS_id);
  worker.batch_size = absl::GetFlag(FLAGS_batch_size);
  worker.data_seed = absl::GetFlag(FLAGS_seed);
  worker.slowdown = absl::GetFlag(FLAGS_slowdown);
  worker.step_delay = absl::Milliseconds(absl::GetFlag(FLAGS_step_delay_ms));
  absl::StatusOr<hips::CompressionOptions> compression = hips::CompressionOptionsFromFlags();
  if (!compression.ok()) hips::ExitWithUsageError(std::string(compression.status().message()));
  worker.compression = *compression;
  if (absl::Status s = hips::ValidateWorkerOptions(worker); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  options.data = hips::DataOptionsFromFlagsOrExit();
  options.model = hips::ModelOptionsFromFlags();
  options.model_seed = absl::GetFlag(FLAGS_seed);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.security = hips::SecurityOptionsFromFlagsOrExit();
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.health_port = absl::GetFlag(FLAGS_health_port);
  if (hips::CheckingFlagsOnly()) {
    hips::ExitAfterFlagCheck(hips::WorkerDaemon::CheckOptions(options));
  }

  absl::StatusOr<std::unique_ptr<hips::WorkerDaemon>> daemon =
      hips::WorkerDaemon::Start(std::move(options));
  if (!daemon.ok()) hips::ExitOnStartFailure(daemon.status());
  if ((*daemon)->metrics_port() >= 0) {
    hips::WritePortFileOrExit(absl::GetFlag(FLAGS_metrics_port_file), (*daemon)->metrics_port());
  }
  if ((*daemon)->health_port() >= 0) {
    hips::WritePortFileOrExit(absl::GetFlag(FLAGS_health_port_file), (*daemon)->health_port());
  }
  running.store(daemon->get());
  const absl::Status status = (*daemon)->Run();
  watcher.Stop();
  running.store(nullptr);
  daemon->reset();
  if (status.ok() || absl::IsCancelled(status)) return 0;
  LOG(ERROR) << worker.id << ": " << status;
  return 1;
}
