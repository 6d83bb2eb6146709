#ifndef HIPS_HQ_HQ_DAEMON_H_
#define HIPS_HQ_HQ_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "hq/checkpointer.h"
#include "hq/eval_loop.h"
#include "hq/hq_service.h"
#include "hq/parameter_server.h"
#include "services/data/dataset.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"
#include "services/net/health.h"
#include "services/net/security.h"
#include "services/net/server_gate.h"

namespace hips {

struct HqDaemonOptions {
  ParameterServerOptions server;
  ModelOptions model;  // input_shape is taken from the data
  OptimizerOptions optimizer;
  DataOptions data;
  uint64_t seed = 1;  // initial weights
  int64_t eval_every = 100;
  std::string host = "127.0.0.1";
  int port = 0;
  // Also serve on this Unix socket when set (same-host peers).
  std::string unix_socket;
  size_t chunk_bytes = 1 << 20;
  // Weights to aggregators as compressed deltas (docs/wan.md); none: whole.
  std::optional<WeightsChainOptions> weights_compression;
  absl::Duration max_long_poll = absl::Seconds(10);
  // Checkpoints (docs/faults.md): none when empty. On start HQ resumes
  // from the newest valid checkpoint there, when `resume` and there is one.
  std::string checkpoint_dir;
  int checkpoint_keep = 3;
  bool resume = true;
  // TLS and tokens (docs/security.md). The default (none) only serves
  // loopback, and only with `insecure`.
  SecurityOptions security;
  // Streams served at once (max_streams 0: four per member it may have,
  // plus 8) and how long a push may deliver nothing before it is cancelled
  // (docs/security.md, "Limits").
  ServeLimits limits{0, absl::Seconds(30)};
  // /metrics on `metrics_address` (unauthenticated: loopback by default):
  // this port, 0 a free one (metrics_port()), -1 none.
  std::string metrics_address = "127.0.0.1";
  int metrics_port = -1;
};

// A whole hips-hq: master weights and optimizer (ParameterServer), test-set
// evaluation (EvalLoop) and the gRPC server. Start() returns once the server
// listens. Thread-safe: Shutdown may come from any thread (a signal); it
// runs once (a last checkpoint, then the server stops) and is also run by
// the destructor.
class HqDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<HqDaemon>> Start(HqDaemonOptions options);
  // What Start checks before it reads a file or listens (the --check_flags
  // of hips-hq); the model's input shape is checked once the data is read.
  static absl::Status CheckOptions(const HqDaemonOptions& options);
  ~HqDaemon();

  int port() const { return port_; }
  int metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }
  ParameterServer& server() { return *server_; }
  EvalLoop& eval() { return *eval_; }
  // --weights_compression's counters (nullopt without it).
  std::optional<ChainWeightsEncoder::Counters> weights_chain_counters() const {
    return service_->weights_chain_counters();
  }
  void Shutdown();

 private:
  HqDaemon() = default;

  std::unique_ptr<Authorizer> authorizer_;  // read by service_: outlives it
  std::shared_ptr<const Dataset> test_data_;
  std::unique_ptr<Checkpointer> checkpointer_;  // outlives server_, which feeds it
  std::unique_ptr<EvalLoop> eval_;
  std::unique_ptr<ParameterServer> server_;
  // Read the members above at scrape time: destroyed before them.
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<HqService> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::once_flag shutdown_once_;
};

}  // namespace hips

#endif  // HIPS_HQ_HQ_DAEMON_H_
