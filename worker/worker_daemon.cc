#include "worker/worker_daemon.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/net/address.h"
#include "services/types/ids.h"
#include "services/numeric/chunk_codec.h"
#include "worker/grpc_aggregator_client.h"

namespace hips {

namespace {

// The homes of a process of `options.homes` (> 1): ids and indices, not yet
// their examples.
std::vector<HomeOptions> HomesOf(const WorkerDaemonOptions& options) {
  std::vector<HomeOptions> homes;
  for (int i = 0; i < options.homes; ++i) {
    const int index = options.worker.index + i;
    homes.push_back(HomeOptions{absl::StrCat(options.home_prefix, index), index, {}});
  }
  return homes;
}

}  // namespace

absl::Status WorkerDaemon::CheckOptions(const WorkerDaemonOptions& options) {
  if (options.homes < 1 || options.homes > kMaxHostedHomes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--homes must be in [1, ", kMaxHostedHomes, "], got ", options.homes));
  }
  if (options.homes > 1) {
    if (options.worker.index < 0 || options.worker.num_workers < 1 ||
        options.homes > options.worker.num_workers - options.worker.index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "homes ", options.worker.index, " to ", options.worker.index + options.homes - 1,
          " are not all among the run's ", options.worker.num_workers,
          " (--first_home, --homes, --workers)"));
    }
  }
  WorkerOptions worker = options.worker;
  if (options.homes > 1) worker.homes = HomesOf(options);
  if (absl::Status s = ValidateWorkerOptions(worker); !s.ok()) return s;
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
  if (absl::Status s = CheckClientTls(options.serve.security.tls); !s.ok()) return s;
  for (const std::string& a : options.aggregators) {
    if (absl::Status s = CheckPlaintextDial("--aggregator", a, options.serve.security); !s.ok()) {
      return s;
    }
  }
  return CheckServeOptions(options.serve, /*needs_admin=*/false, /*grpc_optional=*/true);
}

absl::StatusOr<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Start(WorkerDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::shared_ptr<const Dataset> train = options.train;
  if (train == nullptr || options.partition.kind != Partition::Kind::kIid) {
    if (absl::Status s = CheckDataOptions(options.data, /*inspect_files=*/true); !s.ok()) return s;
  }
  const int first = options.worker.index;
  absl::StatusOr<std::vector<DataShard>> shards =
      HomeShards(options.data, options.partition, first, options.homes,
                 options.worker.num_workers, options.worker.data_seed, options.worker.batch_size);
  if (!shards.ok()) return shards.status();
  DataShard held = (*shards)[0];
  if (options.homes > 1) {
    options.worker.homes = HomesOf(options);
    for (int i = 0; i < options.homes; ++i) {
      options.worker.homes[i].examples = (*shards)[i].examples;
    }
    if (train == nullptr) {
      absl::StatusOr<int64_t> whole = CountTrainingExamples(options.data);
      if (!whole.ok()) return whole.status();
      held = UnionOfShards(*shards, *whole);
    }
  } else if (held.explicit_list()) {
    options.worker.examples = held.examples;
  }
  if (train == nullptr) {
    // Only this process's homes' examples are held in memory.
    absl::StatusOr<Dataset> loaded = LoadData(options.data, Split::kTrain, std::move(held));
    if (!loaded.ok()) return loaded.status();
    train = std::make_shared<const Dataset>(*std::move(loaded));
  }
  options.model.input_shape = train->example_shape;
  options.model.num_classes = train->num_classes;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(options.model, options.model_seed);
  if (!model.ok()) return model.status();

  absl::StatusOr<ClientCredentials> credentials =
      MakeClientCredentials(ClusterClient(options.serve.security));
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<WorkerDaemon> d(new WorkerDaemon);
  std::vector<AggregatorClient*> clients;
  // Pulls name the first home (the credentials speak for every one).
  const std::string name =
      options.homes == 1 ? options.worker.id : absl::StrCat(options.home_prefix, first);
  for (const std::string& a : options.aggregators) {
    d->clients_.push_back(
        CreateGrpcAggregatorClient(a, name, options.chunk_bytes, *credentials));
    clients.push_back(d->clients_.back().get());
  }
  absl::StatusOr<std::unique_ptr<Worker>> worker =
      Worker::Create(options.worker, *std::move(model), std::move(train), std::move(clients));
  if (!worker.ok()) return worker.status();
  d->worker_ = *std::move(worker);

  absl::StatusOr<std::unique_ptr<DaemonServer>> server =
      DaemonServer::Create(options.serve, /*needs_admin=*/false);
  if (!server.ok()) return server.status();
  d->server_ = *std::move(server);
  Worker* w = d->worker_.get();
  if (MetricsServer* metrics = d->server_->metrics(); metrics != nullptr) {
    w->set_rpc_metrics(d->server_->rpc_metrics());
    metrics->AddCollector([w](MetricFamilies* out) { CollectWorkerMetrics(*w, out); });
  }
  if (absl::Status s = d->server_->Serve({}, {}, [w] { return w->version() >= 0; }); !s.ok()) {
    return s;
  }
  if (options.serve.port >= 0) {
    LOG(INFO) << "health (grpc.health.v1) on " << options.serve.host << ":" << d->health_port();
  }
  LOG(INFO) << (options.homes == 1
                    ? absl::StrCat(options.worker.id, " (shard ", first, " of ")
                    : absl::StrCat(options.homes, " homes (", options.home_prefix, first, " to ",
                                   options.home_prefix, first + options.homes - 1, " of "))
            << options.worker.num_workers << ") training with aggregator " << options.aggregators[0]
            << (options.aggregators.size() > 1
                    ? absl::StrCat(" (", options.aggregators.size() - 1, " to fail over to)")
                    : "");
  return d;
}

WorkerDaemon::~WorkerDaemon() { Shutdown(); }

absl::Status WorkerDaemon::Run() { return worker_->Run(); }

void WorkerDaemon::Shutdown() {
  if (server_ != nullptr) server_->BeginShutdown();
  if (worker_ != nullptr) worker_->Shutdown();
  if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
}

}  // namespace hips
