#ifndef HIPS_SERVICES_METRICS_RPC_METRICS_H_
#define HIPS_SERVICES_METRICS_RPC_METRICS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace hips {

// What a daemon's RPCs cost, by method (a bounded label: the hips.v1 method
// names): hips_rpc_duration_seconds{rpc} (a histogram of handling time,
// end to end for a push), hips_received_bytes_total{rpc} and
// hips_sent_bytes_total{rpc} (tensor payload bytes). Thread-safe.
class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry* registry);

  void Observe(const std::string& rpc, absl::Duration duration, int64_t bytes_received,
               int64_t bytes_sent);

 private:
  struct Method {
    prometheus::Histogram* duration;
    prometheus::Counter* received;
    prometheus::Counter* sent;
  };
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  absl::Mutex mu_;
  std::map<std::string, Method> methods_ ABSL_GUARDED_BY(mu_);
};

// Observes one RPC into `metrics` (may be null: nothing) when it goes out of
// scope. Not thread-safe (one per call).
class RpcTimer {
 public:
  RpcTimer(RpcMetrics* metrics, const char* rpc)
      : metrics_(metrics), rpc_(rpc), start_(absl::Now()) {}
  ~RpcTimer() {
    if (metrics_ != nullptr) metrics_->Observe(rpc_, absl::Now() - start_, received_, sent_);
  }
  RpcTimer(const RpcTimer&) = delete;
  RpcTimer& operator=(const RpcTimer&) = delete;

  void Received(int64_t bytes) { received_ += bytes; }
  void Sent(int64_t bytes) { sent_ += bytes; }

 private:
  RpcMetrics* const metrics_;
  const char* const rpc_;
  const absl::Time start_;
  int64_t received_ = 0;
  int64_t sent_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_METRICS_RPC_METRICS_H_
