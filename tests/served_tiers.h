#ifndef HIPS_TESTS_SERVED_TIERS_H_
#define HIPS_TESTS_SERVED_TIERS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "aggregator/aggregator.h"
#include "aggregator/aggregator_service.h"
#include "aggregator/hq_link.h"
#include "aggregator/testing/fake_hq_client.h"
#include "hq/eval_loop.h"
#include "hq/hq_service.h"
#include "hq/parameter_server.h"
#include "services/net/security.h"

namespace hips {

// HQ (async, a model of kFloats floats all 1, plain SGD) and
// one aggregator "agg-0" (its own HQ in memory, async, no weights' wait),
// each serving its gRPC adapter on 127.0.0.1 with the given security, as
// the daemons serve them; without LibTorch. For the tests of who may call
// what and of what a server accepts (docs/security.md).
class ServedTiers {
 public:
  static constexpr int kFloats = 4;

  // `customize` (if set) may change HQ's and the aggregator's options;
  // both serve with `limits`.
  ServedTiers(
      const SecurityOptions& hq, const SecurityOptions& aggregator,
      const std::function<void(ParameterServerOptions*, AggregatorOptions*)>& customize = nullptr,
      const ServeLimits& limits = {});
  ~ServedTiers();

  const std::string& hq_address() const { return hq_address_; }
  const std::string& aggregator_address() const { return aggregator_address_; }
  std::map<std::string, int64_t> hq_refusals() const { return hq_service_->refusals(); }
  std::map<std::string, int64_t> aggregator_refusals() const {
    return aggregator_service_->refusals();
  }
  const StreamGuard& aggregator_streams() const { return aggregator_service_->streams(); }
  ParameterServer& parameter_server() { return *server_; }
  // The aggregator's HQ, in memory (its push handler may hold an answer).
  FakeHqClient& upstream() { return upstream_; }
  Aggregator& aggregator() { return *aggregator_; }

 private:
  static std::unique_ptr<grpc::Server> Serve(grpc::Service* service,
                                             const SecurityOptions& security, std::string* address);

  Authorizer hq_authorizer_;
  Authorizer aggregator_authorizer_;
  EvalLoop eval_{
      [](absl::Span<const float>) -> absl::StatusOr<EvalMetrics> { return EvalMetrics{}; }, 0};
  std::unique_ptr<ParameterServer> server_;
  std::unique_ptr<HqService> hq_service_;
  std::unique_ptr<grpc::Server> hq_;
  std::string hq_address_;
  std::unique_ptr<Aggregator> aggregator_;
  FakeHqClient upstream_{/*keep_pushes=*/false};
  std::unique_ptr<HqLink> link_;
  std::unique_ptr<AggregatorService> aggregator_service_;
  std::unique_ptr<grpc::Server> aggregator_server_;
  std::string aggregator_address_;
};

}  // namespace hips

#endif  // HIPS_TESTS_SERVED_TIERS_H_
