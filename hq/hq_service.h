#ifndef HIPS_HQ_HQ_SERVICE_H_
#define HIPS_HQ_HQ_SERVICE_H_

#include "absl/time/time.h"
#include "hips/v1/hips.pb.h"
#include "hq/eval_loop.h"
#include "hq/parameter_server.h"
#include "services/core/buffer_pool.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/raw_service.h"
#include "services/net/weights_stream.h"

namespace hips {

// The thin gRPC adapter of hips.v1.Hq. Thread-safe; the ParameterServer and
// EvalLoop must outlive it.
class HqService final : public RawService {
 public:
  // `rpc_metrics` may be null.
  HqService(ParameterServer* server, const EvalLoop* eval, size_t chunk_bytes,
            absl::Duration max_long_poll, RpcMetrics* rpc_metrics = nullptr);

  grpc::Status PushAggregate(grpc::ServerContext* ctx, PushReader* reader, v1::PushAck* ack);
  grpc::Status PullWeights(grpc::ServerContext* ctx, const v1::PullWeightsRequest* req,
                           ChunkWriter* writer);
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatReply* reply);
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                         v1::StatusReply* reply);
  grpc::Status SetMode(grpc::ServerContext* ctx, const v1::SetModeRequest* req,
                       v1::SetModeReply* reply);

 private:
  ParameterServer* const server_;
  const EvalLoop* const eval_;
  WeightsEncodingCache encoded_;
  // Buffers the aggregates are read into (a round's sum, one or two in
  // flight).
  BufferPool spares_{3};
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_HQ_HQ_SERVICE_H_
