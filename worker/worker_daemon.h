#ifndef HIPS_WORKER_WORKER_DAEMON_H_
#define HIPS_WORKER_WORKER_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/data/dataset.h"
#include "services/data/partition.h"
#include "services/models/model.h"
#include "services/net/daemon_server.h"
#include "services/numeric/chunk_codec.h"
#include "worker/aggregator_client.h"
#include "worker/worker.h"

namespace hips {

struct WorkerDaemonOptions {
  WorkerOptions worker;
  // More than one: the process hosts homes worker.index ..
  // worker.index + homes - 1 of the run's worker.num_workers (hips-worker
  // --homes, --first_home), called home_prefix + their index; worker.id is
  // not used then. Their credentials (serve.security) must speak for them
  // all: a member token or certificate of the range (HomeRange).
  int homes = 1;
  std::string home_prefix = "worker-";
  // Aggregator addresses (host:port, or unix:PATH): its own first, then the
  // ones it fails over to.
  std::vector<std::string> aggregators;
  size_t chunk_bytes = kDefaultChunkBytes;
  ModelOptions model;       // input_shape and num_classes are taken from the data
  uint64_t model_seed = 1;  // initial weights (HQ's replace them)
  // The training data: `train` when set (processes that run several workers
  // share one copy), else loaded as `data` says.
  DataOptions data;
  std::shared_ptr<const Dataset> train;
  // How the run's examples are split among its worker.num_workers homes
  // (--partition): this home holds (and keeps in memory) its part only.
  Partition partition;
  // What it serves: the gRPC health service (grpc.health.v1; SERVING once
  // the worker computes on weights) on serve.host:serve.port (-1: none,
  // the default here) and /metrics (metrics_port -1: none). serve.security
  // is also the TLS and cluster token it presents to its aggregators
  // (docs/security.md).
  ServeOptions serve = HealthOnly();

  static ServeOptions HealthOnly() {
    ServeOptions o;
    o.port = -1;
    o.port_flag = "--health_port";
    return o;
  }
};

// A whole hips-worker: its shard of the training data, its model replica,
// the clients of its aggregators, the Worker loop and what it serves
// (DaemonServer: health, /metrics). Start() loads and connects; Run() trains
// on the calling thread until the weights say training is done (OK) or
// Shutdown (CANCELLED). Thread-safe: Shutdown may come from any thread (a
// signal), is idempotent and is also run by the destructor.
class WorkerDaemon {
 public:
  // INVALID_ARGUMENT for bad options (a configuration error), the loader's
  // error for data that cannot be read.
  static absl::StatusOr<std::unique_ptr<WorkerDaemon>> Start(WorkerDaemonOptions options);
  // What Start checks before it reads a file, listens or dials (the
  // --check_flags of hips-worker); the model's input shape is checked once
  // the data is read.
  static absl::Status CheckOptions(const WorkerDaemonOptions& options);
  ~WorkerDaemon();

  absl::Status Run();
  void Shutdown();

  int metrics_port() const { return server_->metrics_port(); }
  int health_port() const { return server_->port(); }
  Worker& worker() { return *worker_; }

 private:
  WorkerDaemon() = default;

  std::vector<std::unique_ptr<AggregatorClient>> clients_;
  std::unique_ptr<Worker> worker_;
  // Last, destroyed first: its metrics and health read worker_.
  std::unique_ptr<DaemonServer> server_;
};

}  // namespace hips

#endif  // HIPS_WORKER_WORKER_DAEMON_H_
