#ifndef HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_
#define HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aggregator/aggregator.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/hq_client.h"
#include "aggregator/hq_link.h"
#include "services/metrics/metrics_server.h"
#include "services/net/daemon_server.h"
#include "services/numeric/chunk_codec.h"

namespace hips {

struct AggregatorDaemonOptions {
  AggregatorOptions aggregator;
  // Where and how it serves its workers (metrics_port -1: no /metrics).
  ServeOptions serve;
  // Where workers and operators reach it (host:port), told to HQ for hips
  // status; empty: host:port (a container listening on 0.0.0.0 names its
  // service instead).
  std::string advertise_address;
  std::string hq_address;
  // Talks to HQ through the client this makes instead of gRPC to hq_address
  // when set (the benchmarks measure one hop with an HQ that answers at once).
  std::function<std::unique_ptr<HqClient>()> make_hq_client;
  size_t chunk_bytes = kDefaultChunkBytes;
  // Threads that sum a big tensor (SetSummationThreads; process-wide).
  int sum_threads = 2;
  HqLinkOptions link;
};

// A whole hips-aggregator: the Aggregator logic, its link to HQ and what it
// serves (DaemonServer: the workers' gRPC service, health, /metrics:
// CollectAggregatorMetrics). Start() returns once the server listens; Run()
// serves until Shutdown, or until HQ refuses this aggregator's credentials
// (no retry can get in: its refusal). Thread-safe; Shutdown is idempotent
// and also run by the destructor.
class AggregatorDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<AggregatorDaemon>> Start(AggregatorDaemonOptions options);
  // What Start checks before it reads a file, listens or dials (the
  // --check_flags of hips-aggregator): every option, in one place.
  static absl::Status CheckOptions(const AggregatorDaemonOptions& options);
  ~AggregatorDaemon();

  absl::Status Run();
  int port() const { return server_->port(); }
  int metrics_port() const { return server_->metrics_port(); }
  Aggregator& aggregator() { return *aggregator_; }
  void Shutdown();

 private:
  AggregatorDaemon() = default;
  // Registers the aggregator's metrics and starts its service.
  absl::Status Serve(const AggregatorDaemonOptions& options);

  std::unique_ptr<Aggregator> aggregator_;
  std::unique_ptr<HqClient> hq_;
  std::unique_ptr<HqLink> link_;
  // link_ once it exists (created after the server starts, read by health
  // checks).
  std::atomic<const HqLink*> live_link_{nullptr};
  std::unique_ptr<AggregatorService> service_;
  absl::Mutex mu_;
  absl::Status refused_ ABSL_GUARDED_BY(mu_);
  // Last, destroyed first: its server calls into service_ and its metrics
  // read aggregator_.
  std::unique_ptr<DaemonServer> server_;
};

// An aggregator's metrics at scrape time (docs/observability.md).
void CollectAggregatorMetrics(const AggregatorCounters& c, int64_t version, MetricFamilies* out);

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_DAEMON_H_
