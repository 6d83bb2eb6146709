#ifndef HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
#define HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/time/time.h"
#include "aggregator/aggregator.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/security.h"
#include "services/net/server_gate.h"
#include "services/net/weights_stream.h"

namespace hips {

// hips.v1.Aggregator on gRPC's callback API: the bulk methods read and write
// raw ByteBuffers (no protobuf copies of tensors), the small ones keep their
// protobuf types. On the wire nothing differs from the generated service.
using AggregatorServiceBase = v1::Aggregator::WithRawCallbackMethod_PushGradient<
    v1::Aggregator::WithRawCallbackMethod_PullWeights<v1::Aggregator::WithCallbackMethod_GetStatus<
        v1::Aggregator::WithCallbackMethod_Heartbeat<v1::Aggregator::Service>>>>;

// The thin gRPC adapter of hips.v1.Aggregator: checks every call's
// credentials (`authorizer`: docs/security.md), decodes and checks what
// workers send, hands domain types to Aggregator, and maps its statuses. No
// call holds a thread while it waits (for HQ's answer to a push, or for
// newer weights). Thread-safe; `aggregator`, `authorizer` and `rpc_metrics`
// (may be null) must outlive it.
class AggregatorService final : public AggregatorServiceBase {
 public:
  AggregatorService(Aggregator* aggregator, const Authorizer* authorizer, size_t chunk_bytes,
                    absl::Duration max_long_poll, RpcMetrics* rpc_metrics = nullptr,
                    const ServeLimits& limits = {});

  // Calls refused before they were served, by reason.
  std::map<std::string, int64_t> refusals() const { return gate_.refusals(); }
  const StreamGuard& streams() const { return gate_.streams(); }

  grpc::ServerReadReactor<grpc::ByteBuffer>* PushGradient(grpc::CallbackServerContext* ctx,
                                                          grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* PullWeights(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx,
                                      const v1::StatusRequest* req,
                                      v1::AggregatorStatus* reply) override;

 private:
  Aggregator* const aggregator_;
  ServerGate gate_;
  WeightsEncodingCache encoded_;
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
