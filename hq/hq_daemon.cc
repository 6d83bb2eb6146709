#include "hq/hq_daemon.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "hq/control_variates.h"
#include "hq/hq_metrics.h"
#include "services/models/checkpoint_codec.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/parallel.h"
#include "services/numeric/scaffold.h"

namespace hips {

absl::Status HqDaemon::CheckOptions(const HqDaemonOptions& options) {
  if (absl::Status s = ValidateParameterServerOptions(options.server); !s.ok()) return s;
  if (absl::Status s = ValidateOptimizerOptions(options.optimizer); !s.ok()) return s;
  // (The server's copy of the optimizer options is filled in at start.)
  if (absl::Status s = CheckModeFitsOptimizer(options.server.mode, options.optimizer.name);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateModelOptions(options.model); !s.ok()) return s;
  if (absl::Status s = CheckDataOptions(options.data, /*inspect_files=*/false); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;
  if (absl::Status s = ValidateSummationThreads(options.sum_threads); !s.ok()) return s;
  if (options.weights_compression.has_value()) {
    if (absl::Status s = ValidateWeightsChainOptions(*options.weights_compression); !s.ok()) {
      return s;
    }
  }
  if (options.eval_every < 0) return absl::InvalidArgumentError("--eval_every must be >= 0");
  if (!options.checkpoint_dir.empty()) {
    if (absl::Status s = ValidateCheckpointStoreOptions(
            CheckpointStoreOptions{options.checkpoint_dir, options.checkpoint_keep});
        !s.ok()) {
      return s;
    }
  }
  return CheckServeOptions(options.serve, /*needs_admin=*/true);
}

absl::StatusOr<std::unique_ptr<HqDaemon>> HqDaemon::Start(HqDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  options.server.optimizer = options.optimizer;
  options.serve.security.serves = MemberRole::kAggregator;  // (member tokens)
  SetSummationThreads(options.sum_threads);
  std::unique_ptr<HqDaemon> d(new HqDaemon);
  absl::StatusOr<std::unique_ptr<DaemonServer>> server =
      DaemonServer::Create(options.serve, /*needs_admin=*/true);
  if (!server.ok()) return server.status();
  d->server_ = *std::move(server);
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = d->LoadModel(&options);
  if (!optimizer.ok()) return optimizer.status();
  absl::StatusOr<std::optional<Checkpoint>> resume_from = d->OpenCheckpoints(options);
  if (!resume_from.ok()) return resume_from.status();
  if (absl::Status s = d->StartTraining(options, *std::move(optimizer), *resume_from); !s.ok()) {
    return s;
  }
  if (absl::Status s = d->Serve(options); !s.ok()) return s;
  LOG(INFO) << "HQ listening on " << options.serve.host << ":" << d->port() << ", model "
            << options.model.name << " (" << d->layout_.num_floats() << " floats), "
            << options.server.expected_aggregators << " aggregators, mode "
            << DescribeMode(options.server.mode) << ", optimizer " << options.optimizer.name
            << " lr=" << options.optimizer.learning_rate << ", budget "
            << options.server.max_versions << " versions / " << options.server.max_samples
            << " samples (0: none)";
  return d;
}

absl::StatusOr<std::unique_ptr<Optimizer>> HqDaemon::LoadModel(HqDaemonOptions* options) {
  if (absl::Status s = CheckDataOptions(options->data, /*inspect_files=*/true); !s.ok()) return s;
  absl::StatusOr<Dataset> test = LoadData(options->data, Split::kTest);
  if (!test.ok()) return test.status();
  test_data_ = std::make_shared<const Dataset>(*std::move(test));
  options->model.input_shape = test_data_->example_shape;
  options->model.num_classes = test_data_->num_classes;
  absl::StatusOr<std::unique_ptr<Model>> master = Model::Create(options->model, options->seed);
  if (!master.ok()) return master.status();
  const ModelLayout model_layout = (*master)->layout();
  layout_ = model_layout;
  absl::StatusOr<std::unique_ptr<Optimizer>> optimizer =
      CreateTorchOptimizer(options->optimizer, *std::move(master));
  if (!optimizer.ok()) return optimizer.status();
  if (options->server.control_variates) {
    // SCAFFOLD: the server variate travels, and is checkpointed, after the
    // weights (services/numeric/scaffold.h).
    absl::StatusOr<ModelLayout> served = WithControlVariates(model_layout);
    if (!served.ok()) return served.status();
    layout_ = *std::move(served);
    optimizer = std::unique_ptr<Optimizer>(std::make_unique<ControlVariateOptimizer>(
        *std::move(optimizer), ParameterFloats(model_layout)));
  }
  const size_t model_floats = static_cast<size_t>(model_layout.num_floats());
  // The evaluation replica belongs to the eval thread alone.
  absl::StatusOr<std::unique_ptr<Model>> replica = Model::Create(options->model, options->seed);
  if (!replica.ok()) return replica.status();
  std::shared_ptr<Model> eval_model = *std::move(replica);
  std::shared_ptr<const Dataset> test_data = test_data_;
  eval_ = std::make_unique<EvalLoop>(
      [eval_model, test_data,
       model_floats](absl::Span<const float> weights) -> absl::StatusOr<EvalMetrics> {
        // (Without the control variates that may follow the model's floats.)
        if (absl::Status s =
                eval_model->SetWeights(weights.first(std::min(weights.size(), model_floats)));
            !s.ok()) {
          return s;
        }
        return eval_model->Evaluate(*test_data);
      },
      options->eval_every);
  return optimizer;
}

absl::StatusOr<std::optional<Checkpoint>> HqDaemon::OpenCheckpoints(
    const HqDaemonOptions& options) {
  std::optional<Checkpoint> resume_from;
  if (options.checkpoint_dir.empty()) return resume_from;
  CheckpointStore store(CheckpointStoreOptions{options.checkpoint_dir, options.checkpoint_keep},
                        EncodeCheckpoint, DecodeCheckpoint);
  if (options.resume) {
    std::vector<std::string> rejected;
    absl::StatusOr<Checkpoint> newest = store.LoadNewest(&rejected);
    for (const std::string& path : rejected) {
      LOG(WARNING) << "skipped the damaged checkpoint " << path;
    }
    if (newest.ok()) {
      resume_from = *std::move(newest);
    } else if (!absl::IsNotFound(newest.status()) || !rejected.empty()) {
      // Checkpoints exist but none is usable: starting over silently would
      // throw the run away.
      return absl::DataLossError(absl::StrCat("no usable checkpoint in ", options.checkpoint_dir,
                                              ": ", newest.status().message()));
    }
  }
  checkpointer_ = std::make_unique<Checkpointer>(std::move(store));
  return resume_from;
}

absl::Status HqDaemon::StartTraining(const HqDaemonOptions& options,
                                     std::unique_ptr<Optimizer> optimizer,
                                     const std::optional<Checkpoint>& resume_from) {
  std::function<void(Checkpoint)> on_checkpoint;
  if (checkpointer_ != nullptr) {
    Checkpointer* checkpointer = checkpointer_.get();
    on_checkpoint = [checkpointer](Checkpoint c) { checkpointer->Offer(std::move(c)); };
  }
  // Round latency: the time between consecutive versions (on_publish runs
  // under the lock that serializes updates, so `last` needs no lock).
  prometheus::Histogram* round_seconds = nullptr;
  if (MetricsServer* metrics = server_->metrics(); metrics != nullptr) {
    round_seconds = &prometheus::BuildHistogram()
                         .Name("hips_round_duration_seconds")
                         .Help("Time from one published version to the next")
                         .Register(metrics->registry())
                         .Add({}, LatencyBuckets());
  }
  EvalLoop* eval = eval_.get();
  auto last = std::make_shared<absl::Time>(absl::InfinitePast());
  Clock* clock = options.server.clock;
  parameter_server_ = std::make_unique<ParameterServer>(
      options.server, layout_, std::move(optimizer),
      [eval, round_seconds, last, clock](std::shared_ptr<const WeightsSnapshot> s) {
        const absl::Time now = clock->Now();
        if (round_seconds != nullptr && *last != absl::InfinitePast()) {
          round_seconds->Observe(absl::ToDoubleSeconds(now - *last));
        }
        *last = now;
        eval->Offer(std::move(s));
      },
      std::move(on_checkpoint));
  if (!resume_from.has_value()) return absl::OkStatus();
  if (absl::Status s = parameter_server_->Restore(*resume_from); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resume from the checkpoint of version ", resume_from->version, " in ",
                     options.checkpoint_dir, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status HqDaemon::Serve(const HqDaemonOptions& options) {
  const ParameterServerOptions& s = options.server;
  service_ = std::make_unique<HqService>(
      parameter_server_.get(), eval_.get(), server_->authorizer(), options.chunk_bytes,
      options.max_long_poll, server_->rpc_metrics(),
      server_->LimitsFor(s.max_aggregators > 0 ? s.max_aggregators : s.expected_aggregators),
      options.weights_compression);
  if (MetricsServer* metrics = server_->metrics(); metrics != nullptr) {
    ParameterServer* server = parameter_server_.get();
    const EvalLoop* eval = eval_.get();
    const Checkpointer* checkpointer = checkpointer_.get();
    const HqService* service = service_.get();
    metrics->AddCollector([server, eval, checkpointer, service](MetricFamilies* out) {
      CollectHqMetrics(server->status(), *eval, checkpointer, out);
      CollectHqServiceMetrics(*service, out);
    });
  }
  // HQ has its weights (initial or resumed) before it listens: serving
  // until it shuts down.
  return server_->Serve({service_.get()}, {"hips.v1.Hq"}, [] { return true; });
}

HqDaemon::~HqDaemon() { Shutdown(); }

absl::Status HqDaemon::Run() {
  server_->WaitUntilShutdown();
  return absl::OkStatus();
}

void HqDaemon::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (server_ != nullptr) server_->BeginShutdown();
    // Intake stops (what is being applied finishes) before the last
    // checkpoint: nothing HQ acknowledged is missing from it.
    if (parameter_server_ != nullptr) parameter_server_->StopIntake();
    if (parameter_server_ != nullptr && checkpointer_ != nullptr) {
      // The state as it is now, so a restart loses nothing that was applied.
      if (absl::StatusOr<Checkpoint> last = parameter_server_->Capture(); last.ok()) {
        checkpointer_->Offer(*std::move(last));
      }
      checkpointer_->Flush();
    }
    if (parameter_server_ != nullptr) parameter_server_->Shutdown();
    if (server_ != nullptr) server_->Shutdown();
    if (eval_ != nullptr) eval_->Shutdown();
    if (service_ != nullptr) {
      if (std::optional<ChainWeightsEncoder::Counters> chain = service_->weights_chain_counters()) {
        LOG(INFO) << "weights to aggregators: " << chain->deltas_sent << " compressed deltas, "
                  << chain->whole_sent << " whole (" << chain->resyncs << " resyncs); last drift "
                  << chain->drift;
      }
    }
  });
}

}  // namespace hips
