#ifndef HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
#define HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_

#include "absl/time/time.h"
#include "aggregator/aggregator.h"
#include "hips/v1/hips.pb.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/raw_service.h"
#include "services/net/weights_stream.h"

namespace hips {

// The thin gRPC adapter of hips.v1.Aggregator: decodes and checks what
// workers send, hands domain types to Aggregator, and maps its statuses.
// Thread-safe; `aggregator` must outlive it.
class AggregatorService final : public RawService {
 public:
  // `rpc_metrics` may be null.
  AggregatorService(Aggregator* aggregator, size_t chunk_bytes, absl::Duration max_long_poll,
                    RpcMetrics* rpc_metrics = nullptr);

  grpc::Status PushGradient(grpc::ServerContext* ctx, PushReader* reader, v1::PushAck* ack);
  grpc::Status PullWeights(grpc::ServerContext* ctx, const v1::PullWeightsRequest* req,
                           ChunkWriter* writer);
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatReply* reply);
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                         v1::AggregatorStatus* reply);

 private:
  Aggregator* const aggregator_;
  WeightsEncodingCache encoded_;
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
