#include "worker/worker_daemon.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/net/address.h"
#include "services/numeric/chunk_codec.h"
#include "worker/grpc_aggregator_client.h"

namespace hips {

absl::Status WorkerDaemon::CheckOptions(const WorkerDaemonOptions& options) {
  if (absl::Status s = ValidateWorkerOptions(options.worker); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;
  if (options.aggregators.empty()) {
    return absl::InvalidArgumentError("a worker needs an aggregator address");
  }
  for (const std::string& a : options.aggregators) {
    if (absl::Status s = CheckDialAddress("--aggregator", a); !s.ok()) return s;
  }
  if (options.train == nullptr) {
    if (absl::Status s = CheckDataOptions(options.data, /*inspect_files=*/false); !s.ok()) return s;
  }
  if (absl::Status s = ValidateModelOptions(options.model); !s.ok()) return s;
  if (absl::Status s = CheckListenPort("--metrics_port", options.metrics_port, true); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckListenPort("--health_port", options.health_port, true); !s.ok()) {
    return s;
  }
  return CheckClientTls(options.security.tls);
}

absl::StatusOr<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Start(WorkerDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::shared_ptr<const Dataset> train = options.train;
  if (train == nullptr) {
    // Only this worker's shard is held in memory.
    absl::StatusOr<Dataset> loaded = LoadData(
        options.data, Split::kTrain, DataShard{options.worker.index, options.worker.num_workers});
    if (!loaded.ok()) return loaded.status();
    train = std::make_shared<const Dataset>(*std::move(loaded));
  }
  options.model.input_shape = train->example_shape;
  options.model.num_classes = train->num_classes;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(options.model, options.model_seed);
  if (!model.ok()) return model.status();

  absl::StatusOr<ClientCredentials> credentials =
      MakeClientCredentials(ClusterClient(options.security));
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<WorkerDaemon> d(new WorkerDaemon);
  std::vector<AggregatorClient*> clients;
  for (const std::string& a : options.aggregators) {
    d->clients_.push_back(
        CreateGrpcAggregatorClient(a, options.worker.id, options.chunk_bytes, *credentials));
    clients.push_back(d->clients_.back().get());
  }
  absl::StatusOr<std::unique_ptr<Worker>> worker =
      Worker::Create(options.worker, *std::move(model), std::move(train), std::move(clients));
  if (!worker.ok()) return worker.status();
  d->worker_ = *std::move(worker);

  if (options.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options.metrics_address, options.metrics_port);
    if (!metrics.ok()) return metrics.status();
    d->metrics_ = *std::move(metrics);
    d->rpc_metrics_ = std::make_unique<RpcMetrics>(&d->metrics_->registry());
    d->worker_->set_rpc_metrics(d->rpc_metrics_.get());
    Worker* w = d->worker_.get();
    d->metrics_->AddCollector([w](MetricFamilies* out) { CollectWorkerMetrics(*w, out); });
    LOG(INFO) << "metrics on http://" << options.metrics_address << ":" << d->metrics_->port()
              << "/metrics";
  }
  if (options.health_port >= 0) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> health_credentials =
        ServingCredentials(options.metrics_address, options.security, /*needs_admin=*/false);
    if (!health_credentials.ok()) return health_credentials.status();
    const Worker* w = d->worker_.get();
    d->health_ = std::make_unique<HealthService>(std::vector<std::string>{},
                                                 [w] { return w->version() >= 0; });
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat(options.metrics_address, ":", options.health_port),
                             *health_credentials, &d->health_port_);
    builder.RegisterService(d->health_.get());
    d->health_server_ = builder.BuildAndStart();
    if (d->health_server_ == nullptr || d->health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot serve health on ", options.metrics_address,
                                                 ":", options.health_port));
    }
    LOG(INFO) << "health (grpc.health.v1) on " << options.metrics_address << ":" << d->health_port_;
  }
  LOG(INFO) << options.worker.id << " (shard " << options.worker.index << " of "
            << options.worker.num_workers << ") training with aggregator " << options.aggregators[0]
            << (options.aggregators.size() > 1
                    ? absl::StrCat(" (", options.aggregators.size() - 1, " to fail over to)")
                    : "");
  return d;
}

WorkerDaemon::~WorkerDaemon() {
  Shutdown();
  metrics_.reset();  // its collector reads the worker
  health_server_.reset();
}

absl::Status WorkerDaemon::Run() { return worker_->Run(); }

void WorkerDaemon::Shutdown() {
  if (health_ != nullptr) health_->Shutdown();
  if (worker_ != nullptr) worker_->Shutdown();
  if (health_server_ != nullptr) {
    health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
}

}  // namespace hips
