#include "services/metrics/rpc_metrics.h"

#include "services/metrics/metrics_server.h"

namespace hips {

RpcMetrics::RpcMetrics(prometheus::Registry* registry)
    : duration_(prometheus::BuildHistogram()
                    .Name("hips_rpc_duration_seconds")
                    .Help("Time to handle an RPC (a push: until its answer, end to end)")
                    .Register(*registry)),
      received_(prometheus::BuildCounter()
                    .Name("hips_received_bytes_total")
                    .Help("Tensor payload bytes received, by RPC")
                    .Register(*registry)),
      sent_(prometheus::BuildCounter()
                .Name("hips_sent_bytes_total")
                .Help("Tensor payload bytes sent, by RPC")
                .Register(*registry)) {}

void RpcMetrics::Observe(const std::string& rpc, absl::Duration duration, int64_t bytes_received,
                         int64_t bytes_sent) {
  Method* m;
  {
    absl::MutexLock lock(&mu_);
    auto it = methods_.find(rpc);
    if (it == methods_.end()) {
      const std::map<std::string, std::string> labels = {{"rpc", rpc}};
      it = methods_
               .emplace(rpc, Method{&duration_.Add(labels, LatencyBuckets()),
                                    &received_.Add(labels), &sent_.Add(labels)})
               .first;
    }
    m = &it->second;
  }
  m->duration->Observe(absl::ToDoubleSeconds(duration));
  if (bytes_received > 0) m->received->Increment(static_cast<double>(bytes_received));
  if (bytes_sent > 0) m->sent->Increment(static_cast<double>(bytes_sent));
}

}  // namespace hips
