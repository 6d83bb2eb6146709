#include "services/net/health.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/net/grpc_util.h"

namespace hips {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthService::HealthService(std::vector<std::string> services, std::function<bool()> ready)
    : services_(std::move(services)), ready_(std::move(ready)) {}

grpc::Status HealthService::Check(grpc::ServerContext* /*ctx*/, const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  if (!request->service().empty() &&
      std::find(services_.begin(), services_.end(), request->service()) == services_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no service '", request->service(), "' here"));
  }
  const bool serving = !shut_down_.load() && ready_();
  response->set_status(serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
  return grpc::Status::OK;
}

absl::StatusOr<Health> CheckHealth(const std::string& address, const std::string& service,
                                   const ClientCredentials& credentials, absl::Duration timeout) {
  std::unique_ptr<grpc::health::v1::Health::Stub> stub =
      grpc::health::v1::Health::NewStub(CreateHipsChannel(address, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  // Not wait-for-ready: a daemon that is not listening is not healthy.
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&ctx, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  switch (response.status()) {
    case HealthCheckResponse::SERVING:
      return Health::kServing;
    case HealthCheckResponse::NOT_SERVING:
      return Health::kNotServing;
    default:
      return Health::kUnknown;
  }
}

const char* HealthName(Health h) {
  switch (h) {
    case Health::kServing:
      return "SERVING";
    case Health::kNotServing:
      return "NOT_SERVING";
    case Health::kUnknown:
      break;
  }
  return "UNKNOWN";
}

}  // namespace hips
