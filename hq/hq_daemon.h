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
#include "services/net/daemon_server.h"
#include "services/numeric/chunk_codec.h"

namespace hips {

struct HqDaemonOptions {
  ParameterServerOptions server;
  ModelOptions model;  // input_shape is taken from the data
  OptimizerOptions optimizer;
  DataOptions data;
  uint64_t seed = 1;  // initial weights
  int64_t eval_every = 100;
  // Where and how it serves its aggregators and operators (metrics_port -1:
  // no /metrics).
  ServeOptions serve;
  size_t chunk_bytes = kDefaultChunkBytes;
  // Threads that sum a big tensor (SetSummationThreads; process-wide).
  int sum_threads = 2;
  // Weights to aggregators as compressed deltas (docs/wan.md); none: whole.
  std::optional<WeightsChainOptions> weights_compression;
  absl::Duration max_long_poll = absl::Seconds(10);
  // Checkpoints (docs/faults.md): none when empty. On start HQ resumes
  // from the newest valid checkpoint there, when `resume` and there is one.
  std::string checkpoint_dir;
  int checkpoint_keep = 3;
  bool resume = true;
};

// A whole hips-hq: master weights and optimizer (ParameterServer), test-set
// evaluation (EvalLoop), checkpoints (Checkpointer) and what it serves
// (DaemonServer: HQ's gRPC service, health, /metrics). Start() returns once
// the server listens; Run() serves until Shutdown. Thread-safe: Shutdown may
// come from any thread (a signal); it runs once (a last checkpoint, then
// the server stops) and is also run by the destructor.
class HqDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<HqDaemon>> Start(HqDaemonOptions options);
  // What Start checks before it reads a file or listens (the --check_flags
  // of hips-hq); the model's input shape is checked once the data is read.
  static absl::Status CheckOptions(const HqDaemonOptions& options);
  ~HqDaemon();

  absl::Status Run();
  int port() const { return server_->port(); }
  int metrics_port() const { return server_->metrics_port(); }
  ParameterServer& server() { return *parameter_server_; }
  EvalLoop& eval() { return *eval_; }
  // --weights_compression's counters (nullopt without it).
  std::optional<ChainWeightsEncoder::Counters> weights_chain_counters() const {
    return service_->weights_chain_counters();
  }
  void Shutdown();

 private:
  HqDaemon() = default;
  // The master model and its optimizer, and the evaluation replica.
  absl::StatusOr<std::unique_ptr<Optimizer>> LoadModel(HqDaemonOptions* options);
  // The checkpoint to resume from (if any), and the writer of new ones.
  absl::StatusOr<std::optional<Checkpoint>> OpenCheckpoints(const HqDaemonOptions& options);
  // The parameter server, resumed from `resume_from`.
  absl::Status StartTraining(const HqDaemonOptions& options, std::unique_ptr<Optimizer> optimizer,
                             const std::optional<Checkpoint>& resume_from);
  // Registers the metrics and serves HQ's service.
  absl::Status Serve(const HqDaemonOptions& options);

  std::shared_ptr<const Dataset> test_data_;
  ModelLayout layout_;
  std::unique_ptr<Checkpointer> checkpointer_;  // outlives parameter_server_, which feeds it
  std::unique_ptr<EvalLoop> eval_;
  std::unique_ptr<ParameterServer> parameter_server_;
  std::unique_ptr<HqService> service_;
  std::once_flag shutdown_once_;
  // Last, destroyed first: its server calls into service_ and its metrics
  // read the members above.
  std::unique_ptr<DaemonServer> server_;
};

}  // namespace hips

#endif  // HIPS_HQ_HQ_DAEMON_H_
