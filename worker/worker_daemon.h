#ifndef HIPS_WORKER_WORKER_DAEMON_H_
#define HIPS_WORKER_WORKER_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/data/dataset.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/models/model.h"
#include "services/net/health.h"
#include "services/net/security.h"
#include "worker/aggregator_client.h"
#include "worker/worker.h"

namespace hips {

struct WorkerDaemonOptions {
  WorkerOptions worker;
  // Aggregator addresses (host:port, or unix:PATH): its own first, then the
  // ones it fails over to.
  std::vector<std::string> aggregators;
  size_t chunk_bytes = 1 << 20;
  ModelOptions model;       // input_shape and num_classes are taken from the data
  uint64_t model_seed = 1;  // initial weights (HQ's replace them)
  // The training data: `train` when set (processes that run several workers
  // share one copy), else loaded as `data` says.
  DataOptions data;
  std::shared_ptr<const Dataset> train;
  // TLS and the cluster token it presents (docs/security.md).
  SecurityOptions security;
  // /metrics on `metrics_address` (unauthenticated: loopback by default):
  // this port, 0 a free one (metrics_port()), -1 none.
  std::string metrics_address = "127.0.0.1";
  int metrics_port = -1;
  // The gRPC health service (grpc.health.v1) on `metrics_address`: this
  // port, 0 a free one (health_port()), -1 none. SERVING once the worker
  // computes on weights; TLS as `security` says (docs/deploy.md).
  int health_port = -1;
};

// A whole hips-worker: its shard of the training data, its model replica,
// the clients of its aggregators, the Worker loop and its /metrics. Start()
// loads and connects; Run() trains on the calling thread until the weights
// say training is done (OK) or Shutdown (CANCELLED). Thread-safe: Shutdown
// may come from any thread (a signal), is idempotent and is also run by the
// destructor.
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

  int metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }
  int health_port() const { return health_server_ == nullptr ? -1 : health_port_; }
  Worker& worker() { return *worker_; }

 private:
  WorkerDaemon() = default;

  std::vector<std::unique_ptr<AggregatorClient>> clients_;
  std::unique_ptr<Worker> worker_;
  // Reads worker_ at scrape time: destroyed before it.
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  // Reads worker_: shut down before it is destroyed.
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> health_server_;
  int health_port_ = 0;
};

}  // namespace hips

#endif  // HIPS_WORKER_WORKER_DAEMON_H_
