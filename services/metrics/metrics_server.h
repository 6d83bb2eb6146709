#ifndef HIPS_SERVICES_METRICS_METRICS_SERVER_H_
#define HIPS_SERVICES_METRICS_METRICS_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace hips {

// Builds the metric families of one scrape from values read at scrape time
// (a daemon's status snapshot), so that /metrics shows exactly what
// GetStatus shows. Samples of one name form one family; the first call for
// a name sets its help and type. Not thread-safe (one per scrape).
class MetricFamilies {
 public:
  using Labels = std::map<std::string, std::string>;

  void Counter(absl::string_view name, absl::string_view help, double value,
               const Labels& labels = {});
  void Gauge(absl::string_view name, absl::string_view help, double value,
             const Labels& labels = {});
  // One counter per value of `label` in `keys`, 0 where `counts` has none:
  // a rate over a series that does not exist yet is no data, not zero.
  void Counters(absl::string_view name, absl::string_view help, const std::string& label,
                const std::vector<std::string>& keys, const std::map<std::string, int64_t>& counts);
  // A histogram from per-bucket counts: counts[i] observations were at most
  // upper_bounds[i] (and above the previous bound); `overflow` were above the
  // last bound. `sum` is the sum of all observations.
  void Histogram(absl::string_view name, absl::string_view help,
                 const std::vector<double>& upper_bounds, const std::vector<int64_t>& counts,
                 int64_t overflow, double sum);

  std::vector<prometheus::MetricFamily> Take() { return std::move(families_); }

 private:
  prometheus::ClientMetric& Add(absl::string_view name, absl::string_view help,
                                prometheus::MetricType type, const Labels& labels);

  std::vector<prometheus::MetricFamily> families_;
};

// Serves Prometheus metrics at http://host:port/metrics in the text
// exposition format (prometheus-cpp's registry and serializer). Two kinds of
// sources: collectors, called at every scrape, that report a daemon's
// counters as they are; and the registry, for histograms and counters
// updated where things happen (RPC latencies, bytes).
//
// The HTTP side is a minimal HTTP/1.1 responder of its own (GET, one request
// per connection) on one thread: prometheus-cpp's civetweb-based Exposer
// cannot start in a process that loads LibTorch (docs/observability.md).
// Thread-safe; the destructor stops and joins the thread.
class MetricsServer {
 public:
  // Listens on host:port (an IPv4 address); port 0 picks a free one (see
  // port()).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& host, int port);
  ~MetricsServer();

  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }
  // `collect` runs on the server's thread at every scrape; it must only
  // read thread-safe snapshots.
  void AddCollector(std::function<void(MetricFamilies*)> collect);

  // The text a scrape returns now.
  std::string Scrape() const;

 private:
  MetricsServer() = default;
  void Serve();

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_fd_[2] = {-1, -1};  // a pipe that ends Serve's poll
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::vector<std::function<void(MetricFamilies*)>> collectors_ ABSL_GUARDED_BY(mu_);
};

// What a request to the metrics port asks for, from its request line (the
// bytes up to the first CRLF, or all of them): GET /metrics (with or
// without a query), GET / (an index), another GET, or anything else.
enum class MetricsRoute { kMetrics, kIndex, kNotFound, kBadRequest };
MetricsRoute RouteMetricsRequest(absl::string_view request);

// Latency buckets in seconds, from 100 µs to 30 s (roughly ×2.5 apart).
const std::vector<double>& LatencyBuckets();

}  // namespace hips

#endif  // HIPS_SERVICES_METRICS_METRICS_SERVER_H_
