#include "hq/hq_daemon.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/core/chunk_codec.h"
#include "services/net/grpc_util.h"

namespace hips {

absl::StatusOr<std::unique_ptr<HqDaemon>> HqDaemon::Start(HqDaemonOptions options) {
  if (absl::Status s = ValidateParameterServerOptions(options.server); !s.ok()) return s;
  if (absl::Status s = ValidateOptimizerOptions(options.optimizer); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;

  options.server.optimizer = options.optimizer;
  std::unique_ptr<HqDaemon> d(new HqDaemon);
  absl::StatusOr<Dataset> test = LoadData(options.data, Split::kTest);
  if (!test.ok()) return test.status();
  d->test_data_ = std::make_shared<const Dataset>(*std::move(test));
  options.model.input_shape = d->test_data_->example_shape;
  options.model.num_classes = d->test_data_->num_classes;

  absl::StatusOr<std::unique_ptr<Model>> master = Model::Create(options.model, options.seed);
  if (!master.ok()) return master.status();
  const ModelLayout layout = (*master)->layout();
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      CreateTorchOptimizer(options.optimizer, *std::move(master));
  if (!optimizer.ok()) return optimizer.status();

  // The evaluation replica belongs to the eval thread alone.
  absl::StatusOr<std::unique_ptr<Model>> replica = Model::Create(options.model, options.seed);
  if (!replica.ok()) return replica.status();
  std::shared_ptr<Model> eval_model = *std::move(replica);
  std::shared_ptr<const Dataset> test_data = d->test_data_;
  d->eval_ = std::make_unique<EvalLoop>(
      [eval_model, test_data](absl::Span<const float> weights)
          -> absl::StatusOr<ClassificationMetrics> {
        if (absl::Status s = eval_model->SetWeights(weights); !s.ok()) return s;
        return eval_model->Evaluate(*test_data);
      },
      options.eval_every);

  EvalLoop* eval = d->eval_.get();
  d->server_ = std::make_unique<ParameterServer>(
      options.server, layout, *std::move(optimizer),
      [eval](std::shared_ptr<const WeightsSnapshot> s) { eval->Offer(std::move(s)); });

  d->service_ = std::make_unique<HqService>(d->server_.get(), d->eval_.get(), options.chunk_bytes,
                                            options.max_long_poll);
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &d->port_);
  builder.RegisterService(d->service_.get());
  d->grpc_server_ = builder.BuildAndStart();
  if (d->grpc_server_ == nullptr || d->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  LOG(INFO) << "HQ listening on " << options.host << ":" << d->port_ << ", model "
            << options.model.name << " (" << layout.num_floats() << " floats), "
            << options.server.expected_aggregators << " aggregators, mode "
            << DescribeMode(options.server.mode) << ", optimizer " << options.optimizer.name
            << " lr=" << options.optimizer.learning_rate << ", budget "
            << options.server.max_versions << " versions / " << options.server.max_samples
            << " samples (0: none)";
  return d;
}

HqDaemon::~HqDaemon() { Shutdown(); }

void HqDaemon::Shutdown() {
  if (server_ != nullptr) server_->Shutdown();
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (eval_ != nullptr) eval_->Shutdown();
}

}  // namespace hips
