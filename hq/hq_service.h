#ifndef HIPS_HQ_HQ_SERVICE_H_
#define HIPS_HQ_HQ_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "hips/v1/hips.grpc.pb.h"
#include "hq/eval_loop.h"
#include "hq/parameter_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/security.h"
#include "services/net/server_gate.h"
#include "services/net/weights_stream.h"
#include "services/numeric/buffer_pool.h"

namespace hips {

// hips.v1.Hq on gRPC's callback API: the bulk methods read and write raw
// ByteBuffers (no protobuf copies of tensors), the small ones keep their
// protobuf types. On the wire nothing differs from the generated service.
using HqServiceBase =
    v1::Hq::WithRawCallbackMethod_PushAggregate<v1::Hq::WithRawCallbackMethod_PullWeights<
        v1::Hq::WithCallbackMethod_GetStatus<v1::Hq::WithCallbackMethod_SetMode<
            v1::Hq::WithCallbackMethod_Heartbeat<v1::Hq::Service>>>>>;

// The thin gRPC adapter of hips.v1.Hq: checks every call's credentials
// (`authorizer`: docs/security.md) and what aggregators send. A push is
// applied on the thread that read its last chunk (an update needs the
// previous one; the parameter server serializes them); long polls for
// weights hold no thread. Thread-safe; the ParameterServer, EvalLoop,
// `authorizer` and `rpc_metrics` (may be null) must outlive it.
class HqService final : public HqServiceBase {
 public:
  // With `weights_compression`, an aggregator that holds the previous
  // weights gets a compressed delta (weights_chain.h); without, the weights.
  HqService(ParameterServer* server, const EvalLoop* eval, const Authorizer* authorizer,
            size_t chunk_bytes, absl::Duration max_long_poll, RpcMetrics* rpc_metrics = nullptr,
            const ServeLimits& limits = {},
            std::optional<WeightsChainOptions> weights_compression = std::nullopt);

  // The compressed weights' counters (nullopt without --weights_compression).
  std::optional<ChainWeightsEncoder::Counters> weights_chain_counters() const;

  // Calls refused before they were served, by reason.
  std::map<std::string, int64_t> refusals() const { return gate_.refusals(); }
  const StreamGuard& streams() const { return gate_.streams(); }

  grpc::ServerReadReactor<grpc::ByteBuffer>* PushAggregate(grpc::CallbackServerContext* ctx,
                                                           grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* PullWeights(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatReply* reply) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx,
                                      const v1::StatusRequest* req,
                                      v1::StatusReply* reply) override;
  grpc::ServerUnaryReactor* SetMode(grpc::CallbackServerContext* ctx, const v1::SetModeRequest* req,
                                    v1::SetModeReply* reply) override;

 private:
  ParameterServer* const server_;
  const EvalLoop* const eval_;
  ServerGate gate_;
  // A WeightsEncodingCache, or chain_ (then null without compression).
  std::unique_ptr<WeightsEncoder> encoder_;
  const ChainWeightsEncoder* chain_ = nullptr;
  // Buffers the aggregates are read into (a round's sum, one or two in
  // flight).
  BufferPool spares_{3};
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_HQ_HQ_SERVICE_H_
