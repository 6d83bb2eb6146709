// hips-worker: the home-model tier. Computes gradients of its data shard on
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
#include "services/runtime/training_flags.h"
#include "worker/aggregator_client.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, id, "", "This worker's id (default worker-<index>).");
ABSL_FLAG(std::vector<std::string>, aggregator, {},
          "Aggregator addresses, host:port, comma-separated (required): the first is this "
          "worker's own, the others are where it fails over to (docs/faults.md).");
ABSL_FLAG(int, index, 0, "This worker's shard index in [0, --workers).");
ABSL_FLAG(int, workers, 1, "Number of workers (shards) in the cluster.");
ABSL_FLAG(int64_t, batch_size, 64, "Examples per gradient.");
ABSL_FLAG(int, chunk_bytes, 1 << 20, "Payload bytes per streamed tensor chunk.");
ABSL_FLAG(double, slowdown, 1.0,
          "Straggler injection: make each step take this many times as long (>= 1).");
ABSL_FLAG(int64_t, step_delay_ms, 0, "Straggler injection: sleep this long after each step.");

ABSL_FLAG(std::string, metrics_host, "127.0.0.1", "Address the metrics server listens on.");
ABSL_FLAG(int, metrics_port, 0,
          "Serve Prometheus metrics at http://HOST:PORT/metrics; 0 picks a free port (logged, "
          "see --metrics_port_file), -1 serves none.");
ABSL_FLAG(std::string, metrics_port_file, "", "If set, the metrics port is written here.");

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(
      argc, argv,
      {"hips-worker",
       "the home-model tier of hips",
       {{"", "hips-worker --aggregator=HOST:PORT[,HOST:PORT...] --index=K --workers=W [model flags]",
         "Computes gradients of its shard of the training data on the weights its aggregator\n"
         "relays, and pushes them back.",
         {},
         {"*"}}}});
  if (args.size() > 1) hips::ExitWithUsageError(absl::StrCat("unexpected argument ", args[1]));
  const std::vector<std::string> aggregators = absl::GetFlag(FLAGS_aggregator);
  if (aggregators.empty()) hips::ExitWithUsageError("--aggregator is required");
  for (const std::string& a : aggregators) {
    if (a.empty()) hips::ExitWithUsageError("--aggregator has an empty address");
  }
  if (absl::GetFlag(FLAGS_chunk_bytes) <= 0 || absl::GetFlag(FLAGS_chunk_bytes) % 4 != 0) {
    hips::ExitWithUsageError("--chunk_bytes must be a positive multiple of 4");
  }
  // Until the worker exists a signal simply ends the process; afterwards it
  // stops the worker's loop.
  std::atomic<hips::Worker*> running{nullptr};
  hips::TerminationWatcher watcher([&running](int sig) {
    if (hips::Worker* w = running.load()) {
      w->Shutdown();
    } else {
      _exit(128 + sig);
    }
  });
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));

  hips::WorkerOptions options;
  options.index = absl::GetFlag(FLAGS_index);
  options.num_workers = absl::GetFlag(FLAGS_workers);
  options.id = absl::GetFlag(FLAGS_id).empty() ? absl::StrCat("worker-", options.index)
                                               : absl::GetFlag(FLAGS_id);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.data_seed = absl::GetFlag(FLAGS_seed);
  options.slowdown = absl::GetFlag(FLAGS_slowdown);
  options.step_delay = absl::Milliseconds(absl::GetFlag(FLAGS_step_delay_ms));
  absl::StatusOr<hips::CompressionOptions> compression = hips::CompressionOptionsFromFlags();
  if (!compression.ok()) hips::ExitWithUsageError(std::string(compression.status().message()));
  options.compression = *compression;
  if (absl::Status s = hips::ValidateWorkerOptions(options); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }

  absl::StatusOr<hips::Dataset> data =
      hips::LoadData(hips::DataOptionsFromFlags(), hips::Split::kTrain);
  if (!data.ok()) {
    LOG(ERROR) << data.status();
    return 1;
  }
  hips::ModelOptions model_options = hips::ModelOptionsFromFlags();
  model_options.input_shape = data->example_shape;
  model_options.num_classes = data->num_classes;
  absl::StatusOr<std::unique_ptr<hips::Model>> model =
      hips::Model::Create(model_options, absl::GetFlag(FLAGS_seed));
  if (!model.ok()) hips::ExitWithUsageError(std::string(model.status().message()));

  std::vector<std::unique_ptr<hips::AggregatorClient>> clients;
  std::vector<hips::AggregatorClient*> client_ptrs;
  for (const std::string& a : aggregators) {
    clients.push_back(hips::CreateGrpcAggregatorClient(
        a, options.id, static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes))));
    client_ptrs.push_back(clients.back().get());
  }
  absl::StatusOr<std::unique_ptr<hips::Worker>> worker =
      hips::Worker::Create(options, *std::move(model),
                           std::make_shared<const hips::Dataset>(*std::move(data)), client_ptrs);
  if (!worker.ok()) hips::ExitWithUsageError(std::string(worker.status().message()));

  std::unique_ptr<hips::MetricsServer> metrics;
  std::unique_ptr<hips::RpcMetrics> rpc_metrics;
  if (absl::GetFlag(FLAGS_metrics_port) >= 0) {
    absl::StatusOr<std::unique_ptr<hips::MetricsServer>> started = hips::MetricsServer::Start(
        absl::GetFlag(FLAGS_metrics_host), absl::GetFlag(FLAGS_metrics_port));
    if (!started.ok()) hips::ExitOnStartFailure(started.status());
    metrics = *std::move(started);
    rpc_metrics = std::make_unique<hips::RpcMetrics>(&metrics->registry());
    (*worker)->set_rpc_metrics(rpc_metrics.get());
    hips::Worker* w = worker->get();
    metrics->AddCollector([w](hips::MetricFamilies* out) { hips::CollectWorkerMetrics(*w, out); });
    hips::WritePortFileOrExit(absl::GetFlag(FLAGS_metrics_port_file), metrics->port());
    LOG(INFO) << "metrics on http://" << absl::GetFlag(FLAGS_metrics_host) << ":"
              << metrics->port() << "/metrics";
  }
  running.store(worker->get());
  LOG(INFO) << options.id << " (shard " << options.index << " of " << options.num_workers
            << ") training with aggregator " << aggregators[0]
            << (aggregators.size() > 1 ? absl::StrCat(" (", aggregators.size() - 1,
                                                      " to fail over to)")
                                       : "");
  const absl::Status status = (*worker)->Run();
  watcher.Stop();
  metrics.reset();  // its collector reads the worker
  if (status.ok() || absl::IsCancelled(status)) return 0;
  LOG(ERROR) << options.id << ": " << status;
  return 1;
}
