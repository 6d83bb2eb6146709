#include "hq/hq_daemon.h"

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "hq/hq_metrics.h"
#include "services/models/checkpoint_codec.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/numeric/chunk_codec.h"

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
  if (options.weights_compression.has_value()) {
    if (absl::Status s = ValidateWeightsChainOptions(*options.weights_compression); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckListenPort("--port", options.port, false); !s.ok()) return s;
  if (absl::Status s = CheckListenPort("--metrics_port", options.metrics_port, true); !s.ok()) {
    return s;
  }
  if (options.eval_every < 0) return absl::InvalidArgumentError("--eval_every must be >= 0");
  if (!options.checkpoint_dir.empty()) {
    if (absl::Status s = ValidateCheckpointStoreOptions(
            CheckpointStoreOptions{options.checkpoint_dir, options.checkpoint_keep});
        !s.ok()) {
      return s;
    }
  }
  return CheckServerSecurity(options.host, options.security, /*needs_admin=*/true);
}

absl::StatusOr<std::unique_ptr<HqDaemon>> HqDaemon::Start(HqDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials =
      ServingCredentials(options.host, options.security, /*needs_admin=*/true);
  if (!server_credentials.ok()) return server_credentials.status();

  options.server.optimizer = options.optimizer;
  std::unique_ptr<HqDaemon> d(new HqDaemon);
  d->authorizer_ = std::make_unique<Authorizer>(options.security);
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
      [eval_model, test_data](absl::Span<const float> weights) -> absl::StatusOr<EvalMetrics> {
        if (absl::Status s = eval_model->SetWeights(weights); !s.ok()) return s;
        return eval_model->Evaluate(*test_data);
      },
      options.eval_every);

  std::optional<Checkpoint> resume_from;
  std::function<void(Checkpoint)> on_checkpoint;
  if (!options.checkpoint_dir.empty()) {
    CheckpointStoreOptions store_options{options.checkpoint_dir, options.checkpoint_keep};
    if (absl::Status s = ValidateCheckpointStoreOptions(store_options); !s.ok()) return s;
    CheckpointStore store(store_options, EncodeCheckpoint, DecodeCheckpoint);
    if (options.resume) {
      std::vector<std::string> rejected;
      absl::StatusOr<Checkpoint> newest = store.LoadNewest(&rejected);
      for (const std::string& path : rejected) {
        LOG(WARNING) << "skipped the damaged checkpoint " << path;
      }
      if (newest.ok()) {
        resume_from = *std::move(newest);
      } else if (!absl::IsNotFound(newest.status()) || !rejected.empty()) {
        // Checkpoints exist but none is usable: starting over silently
        // would throw the run away.
        return absl::DataLossError(absl::StrCat("no usable checkpoint in ", options.checkpoint_dir,
                                                ": ", newest.status().message()));
      }
    }
    d->checkpointer_ = std::make_unique<Checkpointer>(std::move(store));
    Checkpointer* checkpointer = d->checkpointer_.get();
    on_checkpoint = [checkpointer](Checkpoint c) { checkpointer->Offer(std::move(c)); };
  }

  // Round latency: the time between consecutive versions (on_publish runs
  // under the lock that serializes updates, so `last` needs no lock).
  prometheus::Histogram* round_seconds = nullptr;
  if (options.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options.metrics_address, options.metrics_port);
    if (!metrics.ok()) return metrics.status();
    d->metrics_ = *std::move(metrics);
    d->rpc_metrics_ = std::make_unique<RpcMetrics>(&d->metrics_->registry());
    round_seconds = &prometheus::BuildHistogram()
                         .Name("hips_round_duration_seconds")
                         .Help("Time from one published version to the next")
                         .Register(d->metrics_->registry())
                         .Add({}, LatencyBuckets());
  }
  EvalLoop* eval = d->eval_.get();
  auto last = std::make_shared<absl::Time>(absl::InfinitePast());
  Clock* clock = options.server.clock;
  d->server_ = std::make_unique<ParameterServer>(
      options.server, layout, *std::move(optimizer),
      [eval, round_seconds, last, clock](std::shared_ptr<const WeightsSnapshot> s) {
        const absl::Time now = clock->Now();
        if (round_seconds != nullptr && *last != absl::InfinitePast()) {
          round_seconds->Observe(absl::ToDoubleSeconds(now - *last));
        }
        *last = now;
        eval->Offer(std::move(s));
      },
      std::move(on_checkpoint));
  if (resume_from.has_value()) {
    if (absl::Status s = d->server_->Restore(*resume_from); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot resume from the checkpoint of version ", resume_from->version,
                       " in ", options.checkpoint_dir, ": ", s.message()));
    }
  }

  if (d->metrics_ != nullptr) {
    ParameterServer* server = d->server_.get();
    const Checkpointer* checkpointer = d->checkpointer_.get();
    d->metrics_->AddCollector([server, eval, checkpointer](MetricFamilies* out) {
      CollectHqMetrics(server->status(), *eval, checkpointer, out);
    });
    LOG(INFO) << "metrics on http://" << options.metrics_address << ":" << d->metrics_->port()
              << "/metrics";
  }
  ServeLimits limits = options.limits;
  if (limits.max_streams == 0) {
    const ParameterServerOptions& s = options.server;
    limits.max_streams =
        4 * (s.max_aggregators > 0 ? s.max_aggregators : s.expected_aggregators) + 8;
  }
  d->service_ = std::make_unique<HqService>(
      d->server_.get(), d->eval_.get(), d->authorizer_.get(), options.chunk_bytes,
      options.max_long_poll, d->rpc_metrics_.get(), limits, options.weights_compression);
  if (d->metrics_ != nullptr) {
    const HqService* service = d->service_.get();
    d->metrics_->AddCollector([service](MetricFamilies* out) {
      out->Counters("hips_calls_refused_total",
                    "Calls refused before they were served (credentials, identity), by reason",
                    "reason", AllRefusalReasons(), service->refusals());
      if (std::optional<ChainWeightsEncoder::Counters> chain = service->weights_chain_counters()) {
        out->Counters("hips_weights_sent_total",
                      "Weights streams to aggregators, as a compressed delta or whole", "form",
                      {"delta", "whole"},
                      {{"delta", chain->deltas_sent}, {"whole", chain->whole_sent}});
        out->Counter("hips_weights_resyncs_total",
                     "Versions sent whole to every aggregator, exactly HQ's weights",
                     static_cast<double>(chain->resyncs));
        out->Gauge("hips_weights_drift",
                   "Largest difference between HQ's newest weights and what aggregators hold",
                   chain->drift);
      }
    });
  }
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port), *server_credentials,
                           &d->port_);
  if (!options.unix_socket.empty()) {
    if (absl::Status s = AddUnixListener(&builder, options.unix_socket, *server_credentials);
        !s.ok()) {
      return s;
    }
  }
  builder.RegisterService(d->service_.get());
  // HQ has its weights (initial or resumed) before it listens: serving
  // until it shuts down.
  d->health_ =
      std::make_unique<HealthService>(std::vector<std::string>{"hips.v1.Hq"}, [] { return true; });
  builder.RegisterService(d->health_.get());
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
  std::call_once(shutdown_once_, [this] {
    if (health_ != nullptr) health_->Shutdown();
    if (server_ != nullptr && checkpointer_ != nullptr) {
      // The state as it is now, so a restart loses nothing that was applied.
      if (absl::StatusOr<Checkpoint> last = server_->Capture(); last.ok()) {
        checkpointer_->Offer(*std::move(last));
      }
      checkpointer_->Flush();
    }
    if (server_ != nullptr) server_->Shutdown();
    if (grpc_server_ != nullptr) {
      grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
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
