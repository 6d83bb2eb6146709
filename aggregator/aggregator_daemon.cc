#include "aggregator/aggregator_daemon.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "aggregator/grpc_hq_client.h"
#include "glog/logging.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/numeric/chunk_codec.h"

namespace hips {

absl::Status AggregatorDaemon::CheckOptions(const AggregatorDaemonOptions& options) {
  if (absl::Status s = ValidateAggregatorOptions(options.aggregator); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;
  if (options.make_hq_client == nullptr) {
    if (options.hq_address.empty()) return absl::InvalidArgumentError("no HQ address given");
    if (absl::Status s = CheckDialAddress("--hq", options.hq_address); !s.ok()) return s;
  }
  if (!options.advertise_address.empty()) {
    if (absl::Status s = CheckDialAddress("--advertise_address", options.advertise_address);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckListenPort("--port", options.port, false); !s.ok()) return s;
  if (absl::Status s = CheckListenPort("--metrics_port", options.metrics_port, true); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckClientTls(options.security.tls); !s.ok()) return s;
  return CheckServerSecurity(options.host, options.security, /*needs_admin=*/false);
}

absl::StatusOr<std::unique_ptr<AggregatorDaemon>> AggregatorDaemon::Start(
    AggregatorDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials =
      ServingCredentials(options.host, options.security, /*needs_admin=*/false);
  if (!server_credentials.ok()) return server_credentials.status();
  absl::StatusOr<ClientCredentials> hq_credentials =
      MakeClientCredentials(ClusterClient(options.security));
  if (!hq_credentials.ok()) return hq_credentials.status();

  std::unique_ptr<AggregatorDaemon> d(new AggregatorDaemon);
  d->authorizer_ = std::make_unique<Authorizer>(options.security);
  d->aggregator_ = std::make_unique<Aggregator>(options.aggregator);
  if (options.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(options.metrics_address, options.metrics_port);
    if (!metrics.ok()) return metrics.status();
    d->metrics_ = *std::move(metrics);
    d->rpc_metrics_ = std::make_unique<RpcMetrics>(&d->metrics_->registry());
    Aggregator* aggregator = d->aggregator_.get();
    d->metrics_->AddCollector([aggregator](MetricFamilies* out) {
      std::shared_ptr<const WeightsSnapshot> latest = aggregator->LatestWeights();
      CollectAggregatorMetrics(aggregator->counters(), latest == nullptr ? -1 : latest->version,
                               out);
      out->Gauge("hips_weights_drift",
                 "Largest difference between these weights and HQ's (0: exactly HQ's; nonzero "
                 "only with HQ's --weights_compression)",
                 latest == nullptr ? 0.0 : latest->drift);
    });
    LOG(INFO) << "metrics on http://" << options.metrics_address << ":" << d->metrics_->port()
              << "/metrics";
  }
  ServeLimits limits = options.limits;
  if (limits.max_streams == 0) {
    const AggregatorOptions& a = options.aggregator;
    limits.max_streams = 4 * (a.max_workers > 0 ? a.max_workers : 2 * a.expected_workers) + 8;
  }
  d->service_ = std::make_unique<AggregatorService>(d->aggregator_.get(), d->authorizer_.get(),
                                                    options.chunk_bytes, options.link.long_poll * 4,
                                                    d->rpc_metrics_.get(), limits);
  if (d->metrics_ != nullptr) {
    const AggregatorService* service = d->service_.get();
    d->metrics_->AddCollector([service](MetricFamilies* out) {
      out->Counters("hips_calls_refused_total",
                    "Calls refused before they were served (credentials, identity), by reason",
                    "reason", AllRefusalReasons(), service->refusals());
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
  // Serving once it has HQ's weights and HQ answers its heartbeats.
  AggregatorDaemon* daemon = d.get();
  d->health_ =
      std::make_unique<HealthService>(std::vector<std::string>{"hips.v1.Aggregator"}, [daemon] {
        const HqLink* link = daemon->live_link_.load();
        return link != nullptr && link->HqAnswering() &&
               daemon->aggregator_->LatestWeights() != nullptr;
      });
  builder.RegisterService(d->health_.get());
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr || d->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  d->hq_ = options.make_hq_client != nullptr
               ? options.make_hq_client()
               : CreateGrpcHqClient(options.hq_address, options.aggregator.id, options.chunk_bytes,
                                    *std::move(hq_credentials));
  options.link.address = options.advertise_address.empty()
                             ? absl::StrCat(options.host, ":", d->port_)
                             : options.advertise_address;
  d->link_ = std::make_unique<HqLink>(d->aggregator_.get(), d->hq_.get(), options.link);
  d->live_link_.store(d->link_.get());
  LOG(INFO) << "aggregator " << options.aggregator.id << " listening on " << options.host << ":"
            << d->port_ << ", " << options.aggregator.expected_workers << " workers, HQ at "
            << options.hq_address;
  return d;
}

AggregatorDaemon::~AggregatorDaemon() { Shutdown(); }

void AggregatorDaemon::Shutdown() {
  // Ending the aggregator's waits first lets in-flight long polls return, so
  // the server's shutdown does not wait on them.
  if (health_ != nullptr) health_->Shutdown();
  if (aggregator_ != nullptr) aggregator_->Shutdown();
  if (server_ != nullptr)
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (link_ != nullptr) link_->Shutdown();
}

void CollectAggregatorMetrics(const AggregatorCounters& c, int64_t version, MetricFamilies* out) {
  out->Gauge("hips_version", "Newest version of the weights this aggregator has", version);
  out->Counter("hips_gradients_received_total", "Worker gradients received", c.gradients_received);
  out->Counter("hips_gradients_accepted_total", "Worker gradients summed or sent on",
               c.gradients_accepted);
  out->Counter("hips_gradients_duplicate_total", "Worker gradients received again",
               c.gradients_duplicate);
  out->Counters("hips_gradients_dropped_total", "Worker gradients dropped, by reason", "reason",
                AllDropReasonNames(), c.gradients_dropped);
  out->Counter("hips_gradients_forwarded_total", "Worker gradients inside aggregates HQ answered",
               c.gradients_forwarded);
  out->Gauge("hips_gradients_pending", "Worker gradients accepted and not yet answered by HQ",
             c.gradients_pending);
  out->Counter("hips_gradients_sent_alone_total",
               "Retried worker gradients sent on alone (deduplicated at HQ)",
               c.gradients_sent_alone);
  out->Counter("hips_gradients_edge_applied_total",
               "fedavg edge rounds: worker deltas applied to this aggregator's copy and "
               "acknowledged here",
               c.gradients_edge_applied);
  out->Counter("hips_edge_rounds_total", "fedavg: edge rounds closed on this aggregator's copy",
               c.edge_rounds_closed);
  out->Counter("hips_aggregates_sent_total", "Aggregates produced", c.rounds_closed);
  out->Counter("hips_gradient_bytes_received_total",
               "Payload bytes of worker gradients as they travelled (encoded if compressed)",
               c.gradient_bytes_received);
  out->Counter("hips_aggregate_bytes_sent_total",
               "Payload bytes of aggregates sent to HQ (encoded if compressed)",
               c.aggregate_bytes_sent);
  out->Counter("hips_aggregates_refused_total", "Aggregates HQ refused", c.aggregates_refused);
  out->Gauge("hips_live_members", "Members holding a lease here, by kind",
             static_cast<double>(c.live_workers.size()), {{"kind", "worker"}});
  out->Gauge("hips_forming", "1 while waiting for its --workers to join at start", c.forming);
}

}  // namespace hips
