#ifndef HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_
#define HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "aggregator/aggregator.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/hq_client.h"
#include "aggregator/hq_link.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/health.h"
#include "services/net/security.h"
#include "services/net/server_gate.h"

namespace hips {

struct AggregatorDaemonOptions {
  AggregatorOptions aggregator;
  std::string host = "127.0.0.1";
  // Where workers and operators reach it (host:port), told to HQ for hips
  // status; empty: host:port (a container listening on 0.0.0.0 names its
  // service instead).
  std::string advertise_address;
  int port = 0;  // 0: a free port, see AggregatorDaemon::port()
  std::string hq_address;
  // TLS and tokens, served and presented to HQ (docs/security.md). The
  // default (none) only serves loopback, and only with `insecure`.
  SecurityOptions security;
  // Streams served at once (max_streams 0: four per member it may have,
  // plus 8) and how long a push may deliver nothing before it is cancelled
  // (docs/security.md, "Limits").
  ServeLimits limits{0, absl::Seconds(30)};
  // Also serve workers on this Unix socket when set (same-host peers).
  std::string unix_socket;
  // Talks to HQ through the client this makes instead of gRPC to hq_address
  // when set (the benchmarks measure one hop with an HQ that answers at once).
  std::function<std::unique_ptr<HqClient>()> make_hq_client;
  size_t chunk_bytes = 1 << 20;
  HqLinkOptions link;
  // /metrics on `metrics_address` (unauthenticated: loopback by default):
  // this port, 0 a free one (metrics_port()), -1 none.
  std::string metrics_address = "127.0.0.1";
  int metrics_port = -1;
};

// A whole hips-aggregator: the Aggregator logic, its link to HQ, its gRPC
// server and its /metrics (CollectAggregatorMetrics). Start() returns once
// the server listens. Thread-safe; Shutdown is idempotent and also run by
// the destructor.
class AggregatorDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<AggregatorDaemon>> Start(AggregatorDaemonOptions options);
  // What Start checks before it reads a file, listens or dials (the
  // --check_flags of hips-aggregator).
  static absl::Status CheckOptions(const AggregatorDaemonOptions& options);
  ~AggregatorDaemon();

  int port() const { return port_; }
  int metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }
  Aggregator& aggregator() { return *aggregator_; }
  void Shutdown();

 private:
  AggregatorDaemon() = default;

  std::unique_ptr<Authorizer> authorizer_;  // read by service_: outlives it
  std::unique_ptr<Aggregator> aggregator_;
  // Reads aggregator_ at scrape time: destroyed before it.
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<HqClient> hq_;
  std::unique_ptr<HqLink> link_;
  // link_ once it exists (created after the server starts, read by health
  // checks).
  std::atomic<const HqLink*> live_link_{nullptr};
  std::unique_ptr<AggregatorService> service_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// An aggregator's metrics at scrape time (docs/observability.md).
void CollectAggregatorMetrics(const AggregatorCounters& c, int64_t version, MetricFamilies* out);

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_
