#ifndef HIPS_HQ_HQ_SERVICE_H_
#define HIPS_HQ_HQ_SERVICE_H_

#include "absl/time/time.h"
#include "hips/v1/hips.grpc.pb.h"
#include "hq/eval_loop.h"
#include "hq/parameter_server.h"
#include "services/metrics/rpc_metrics.h"

namespace hips {

// The thin gRPC adapter of hips.v1.Hq. Thread-safe; the ParameterServer and
// EvalLoop must outlive it.
class HqService final : public v1::Hq::Service {
 public:
  // `rpc_metrics` may be null.
  HqService(ParameterServer* server, const EvalLoop* eval, size_t chunk_bytes,
            absl::Duration max_long_poll, RpcMetrics* rpc_metrics = nullptr)
      : server_(server),
        eval_(eval),
        chunk_bytes_(chunk_bytes),
        max_long_poll_(max_long_poll),
        rpc_metrics_(rpc_metrics) {}

  grpc::Status PushAggregate(grpc::ServerContext* ctx,
                             grpc::ServerReader<v1::AggregateChunk>* reader,
                             v1::PushAck* ack) override;
  grpc::Status PullWeights(grpc::ServerContext* ctx, const v1::PullWeightsRequest* req,
                           grpc::ServerWriter<v1::WeightsChunk>* writer) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatReply* reply) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                         v1::StatusReply* reply) override;
  grpc::Status SetMode(grpc::ServerContext* ctx, const v1::SetModeRequest* req,
                       v1::SetModeReply* reply) override;

 private:
  ParameterServer* const server_;
  const EvalLoop* const eval_;
  const size_t chunk_bytes_;
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_HQ_HQ_SERVICE_H_
