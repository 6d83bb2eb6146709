#include "aggregator/aggregator_daemon.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "aggregator/grpc_hq_client.h"
#include "glog/logging.h"
#include "services/metrics/round_metrics.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/parallel.h"

namespace hips {

absl::Status AggregatorDaemon::CheckOptions(const AggregatorDaemonOptions& options) {
  if (absl::Status s = ValidateAggregatorOptions(options.aggregator); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;
  if (absl::Status s = ValidateSummationThreads(options.sum_threads); !s.ok()) return s;
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
  if (absl::Status s = CheckClientTls(options.serve.security.tls); !s.ok()) return s;
  if (options.make_hq_client == nullptr) {
    if (absl::Status s = CheckPlaintextDial("--hq", options.hq_address, options.serve.security);
        !s.ok()) {
      return s;
    }
  }
  return CheckServeOptions(options.serve, /*needs_admin=*/false);
}

absl::StatusOr<std::unique_ptr<AggregatorDaemon>> AggregatorDaemon::Start(
    AggregatorDaemonOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<ClientCredentials> hq_credentials =
      MakeClientCredentials(ClusterClient(options.serve.security));
  if (!hq_credentials.ok()) return hq_credentials.status();
  options.serve.security.serves = MemberRole::kWorker;  // (member tokens)
  SetSummationThreads(options.sum_threads);
  std::unique_ptr<AggregatorDaemon> d(new AggregatorDaemon);
  absl::StatusOr<std::unique_ptr<DaemonServer>> server =
      DaemonServer::Create(options.serve, /*needs_admin=*/false);
  if (!server.ok()) return server.status();
  d->server_ = *std::move(server);
  d->aggregator_ = std::make_unique<Aggregator>(options.aggregator);
  if (absl::Status s = d->Serve(options); !s.ok()) return s;
  d->hq_ = options.make_hq_client != nullptr
               ? options.make_hq_client()
               : CreateGrpcHqClient(options.hq_address, options.aggregator.id, options.chunk_bytes,
                                    *std::move(hq_credentials));
  options.link.address = options.advertise_address.empty()
                             ? absl::StrCat(options.serve.host, ":", d->port())
                             : options.advertise_address;
  // HQ refusing this aggregator's credentials ends its Run: no retry can
  // get in.
  AggregatorDaemon* daemon = d.get();
  options.link.on_refused = [daemon, also = options.link.on_refused](const absl::Status& why) {
    {
      absl::MutexLock lock(&daemon->mu_);
      daemon->refused_ = why;
    }
    daemon->server_->BeginShutdown();
    if (also) also(why);
  };
  d->link_ = std::make_unique<HqLink>(d->aggregator_.get(), d->hq_.get(), options.link);
  d->live_link_.store(d->link_.get());
  LOG(INFO) << "aggregator " << options.aggregator.id << " listening on " << options.serve.host
            << ":" << d->port() << ", " << options.aggregator.expected_workers << " workers, HQ at "
            << options.hq_address;
  return d;
}

absl::Status AggregatorDaemon::Serve(const AggregatorDaemonOptions& options) {
  Aggregator* aggregator = aggregator_.get();
  if (MetricsServer* metrics = server_->metrics(); metrics != nullptr) {
    metrics->AddCollector([aggregator](MetricFamilies* out) {
      std::shared_ptr<const WeightsSnapshot> latest = aggregator->LatestWeights();
      CollectAggregatorMetrics(aggregator->counters(), latest == nullptr ? -1 : latest->version,
                               out);
      out->Gauge("hips_weights_drift",
                 "Largest difference between these weights and HQ's (0: exactly HQ's; nonzero "
                 "only with HQ's --weights_compression)",
                 latest == nullptr ? 0.0 : latest->drift);
    });
  }
  const AggregatorOptions& a = options.aggregator;
  service_ = std::make_unique<AggregatorService>(
      aggregator, server_->authorizer(), options.chunk_bytes, options.link.long_poll * 4,
      server_->rpc_metrics(),
      server_->LimitsFor(a.max_workers > 0 ? a.max_workers : 2 * a.expected_workers));
  if (MetricsServer* metrics = server_->metrics(); metrics != nullptr) {
    const AggregatorService* service = service_.get();
    metrics->AddCollector([service](MetricFamilies* out) {
      out->Counters("hips_calls_refused_total",
                    "Calls refused before they were served (credentials, identity), by reason",
                    "reason", AllRefusalReasons(), service->refusals());
    });
  }
  // Serving once it has HQ's weights and HQ answers its heartbeats.
  return server_->Serve({service_.get()}, {"hips.v1.Aggregator"}, [this] {
    const HqLink* link = live_link_.load();
    return link != nullptr && link->HqAnswering() && aggregator_->LatestWeights() != nullptr;
  });
}

AggregatorDaemon::~AggregatorDaemon() { Shutdown(); }

absl::Status AggregatorDaemon::Run() {
  server_->WaitUntilShutdown();
  absl::MutexLock lock(&mu_);
  return refused_;
}

void AggregatorDaemon::Shutdown() {
  if (server_ == nullptr) return;
  // Ending the aggregator's waits first lets in-flight long polls return, so
  // the server's shutdown does not wait on them.
  server_->BeginShutdown();
  if (aggregator_ != nullptr) aggregator_->Shutdown();
  server_->Shutdown();
  if (link_ != nullptr) link_->Shutdown();
}

void CollectAggregatorMetrics(const AggregatorCounters& c, int64_t version, MetricFamilies* out) {
  out->Gauge("hips_version", "Newest version of the weights this aggregator has", version);
  out->Counter("hips_gradients_received_total", "Worker gradients received", c.gradients_received);
  out->Counter("hips_gradients_accepted_total", "Worker gradients summed or sent on",
               c.gradients_accepted);
  out->Counter("hips_gradients_duplicate_total", "Worker gradients received again",
               c.gradients_duplicate);
  out->Counter("hips_contributions_clipped_total",
               "Worker gradients scaled down to the --clip_norm bound before they were summed",
               c.gradients_clipped);
  out->Counter("hips_contributions_capped_total",
               "Worker gradients counted with the --max_samples_per_push bound instead of the "
               "samples they claimed",
               c.gradients_capped);
  out->Counter("hips_contributions_trimmed_total",
               "Worker gradients the robust combination (--robust) left out as outliers",
               c.gradients_trimmed);
  out->Counter("hips_members_quarantined_total",
               "Times a worker was put out for a while after its gradients were refused or left "
               "out again and again (--quarantine_ms)",
               c.members_quarantined);
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
  CollectRoundWait(c.round, out);
}

}  // namespace hips
