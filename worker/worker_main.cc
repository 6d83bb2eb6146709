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
#include "services/runtime/daemon_flags.h"
#include "services/runtime/daemon_runner.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"
#include "worker/worker_daemon.h"

ABSL_FLAG(std::string, id, "",
          "This worker's id (default worker-<index>); with --homes > 1, the prefix of its "
          "homes' ids (default worker-: homes worker-<first_home> onwards).");
ABSL_FLAG(std::vector<std::string>, aggregator, {},
          "Aggregator addresses, host:port, comma-separated (required): the first is this "
          "worker's own, the others are where it fails over to (docs/faults.md).");
ABSL_FLAG(bool, aggregator_by_index, false,
          "Every worker has the same --aggregator list (a Kubernetes Job): this worker's own "
          "is entry --index mod N, the ones after it (wrapping) are where it fails over to.");
ABSL_FLAG(int, index, 0, "This worker's shard index in [0, --workers).");
ABSL_FLAG(int, workers, 1,
          "Number of homes (shards) in the run, over all worker processes.");
ABSL_FLAG(int, homes, 1,
          "Homes this process hosts, [1, 16384]: homes --first_home .. --first_home + K - 1 of "
          "the run's --workers, each a member with its own id, data and lease, sharing one "
          "model and the channels (docs/modes.md, \"Many homes\"). Its token or certificate "
          "must name the range, e.g. hips token --member='worker-[0..249]'.");
ABSL_FLAG(int, first_home, -1, "The first home this process hosts (default: --index).");
ABSL_FLAG(double, slowdown, 1.0,
          "Straggler injection: make each step take this many times as long (>= 1).");
ABSL_FLAG(int, health_port, -1,
          "Serve the gRPC health service (grpc.health.v1, for hips health and container "
          "probes) on --metrics_address:PORT; 0 picks a free port (see --health_port_file), "
          "-1 serves none. SERVING once the worker computes on weights.");
ABSL_FLAG(std::string, health_port_file, "", "If set, the health port is written here.");

namespace {

hips::WorkerDaemonOptions OptionsFromFlags() {
  hips::WorkerDaemonOptions o;
  const std::vector<std::string> aggregators = absl::GetFlag(FLAGS_aggregator);
  o.aggregators = aggregators;
  if (absl::GetFlag(FLAGS_first_home) < -1) {
    hips::ExitWithUsageError(
        absl::StrCat("--first_home must be >= 0, got ", absl::GetFlag(FLAGS_first_home)));
  }
  const int first = absl::GetFlag(FLAGS_first_home) >= 0 ? absl::GetFlag(FLAGS_first_home)
                                                          : absl::GetFlag(FLAGS_index);
  if (absl::GetFlag(FLAGS_aggregator_by_index) && first >= 0) {
    o.aggregators = hips::AggregatorsByIndex(aggregators, first);
  }
  o.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  hips::WorkerOptions& worker = o.worker;
  worker.index = first;
  o.homes = absl::GetFlag(FLAGS_homes);
  if (o.homes > 1 && !absl::GetFlag(FLAGS_id).empty()) o.home_prefix = absl::GetFlag(FLAGS_id);
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
  o.data = hips::DataOptionsFromFlags();
  absl::StatusOr<hips::Partition> partition = hips::PartitionFromFlags();
  if (!partition.ok()) hips::ExitWithUsageError(std::string(partition.status().message()));
  o.partition = *partition;
  o.model = hips::ModelOptionsFromFlags();
  o.model_seed = absl::GetFlag(FLAGS_seed);
  o.serve.security = hips::SecurityOptionsFromFlagsOrExit();
  hips::SetMetricsFromFlags(&o.serve);
  // Health on the metrics address (for container probes).
  o.serve.host = o.serve.metrics_address;
  o.serve.port = absl::GetFlag(FLAGS_health_port);
  o.serve.health_only = true;
  o.serve.port_file = absl::GetFlag(FLAGS_health_port_file);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  hips::InitDaemonProcess(
      argc, argv,
      {"hips-worker",
       "the worker tier of hips",
       {{"",
         "hips-worker --aggregator=HOST:PORT[,HOST:PORT...] --index=K --workers=W [model flags]\n"
         "  hips-worker --aggregator=... --homes=K --first_home=I --workers=N [model flags]",
         "Computes gradients of its shard of the training data on the weights its aggregator\n"
         "relays, and pushes them back; with --homes, for K homes in one process.",
         {},
         {"*"}}}});
  if (absl::GetFlag(FLAGS_aggregator).empty()) hips::ExitWithUsageError("--aggregator is required");
  hips::DaemonRunner runner;
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  return runner.Run<hips::WorkerDaemon>(OptionsFromFlags());
}
