#ifndef HIPS_SERVICES_NET_HEALTH_H_
#define HIPS_SERVICES_NET_HEALTH_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/net/security.h"

namespace hips {

// The standard gRPC health service (grpc.health.v1.Health) of a hips
// daemon: Check answers SERVING while `ready()` holds (HQ: it has weights;
// an aggregator: it has HQ's weights and HQ answers its heartbeats; a
// worker: it computes on weights), NOT_SERVING otherwise and after
// Shutdown. It asks `ready` at every call, so no tier has to push its
// state. Service "" is the daemon as a whole; `services` names the others
// it answers for (NOT_FOUND for the rest, as the protocol says). Served
// without the cluster token (a probe learns one bit); behind TLS when the
// daemon serves TLS. Watch is UNIMPLEMENTED: probes use Check.
class HealthService final : public grpc::health::v1::Health::Service {
 public:
  HealthService(std::vector<std::string> services, std::function<bool()> ready);

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;

  // NOT_SERVING from now on (a daemon shutting down).
  void Shutdown() { shut_down_.store(true); }

 private:
  const std::vector<std::string> services_;
  const std::function<bool()> ready_;
  std::atomic<bool> shut_down_{false};
};

// What `hips health` learned of ADDRESS.
enum class Health { kServing, kNotServing, kUnknown };

// Asks the health service at `address` about `service` ("" the whole
// server). An error when the call failed (unreachable, TLS refused, an
// unknown service: NOT_FOUND).
absl::StatusOr<Health> CheckHealth(const std::string& address, const std::string& service,
                                   const ClientCredentials& credentials, absl::Duration timeout);

const char* HealthName(Health h);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_HEALTH_H_
