#ifndef HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
#define HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_

#include "absl/time/time.h"
#include "aggregator/aggregator.h"
#include "services/metrics/rpc_metrics.h"
#include "hips/v1/hips.grpc.pb.h"

namespace hips {

// The thin gRPC adapter of hips.v1.Aggregator: decodes and checks what
// workers send, hands domain types to Aggregator, and maps its statuses.
// Thread-safe; `aggregator` must outlive it.
class AggregatorService final : public v1::Aggregator::Service {
 public:
  // `rpc_metrics` may be null.
  AggregatorService(Aggregator* aggregator, size_t chunk_bytes, absl::Duration max_long_poll,
                    RpcMetrics* rpc_metrics = nullptr)
      : aggregator_(aggregator),
        chunk_bytes_(chunk_bytes),
        max_long_poll_(max_long_poll),
        rpc_metrics_(rpc_metrics) {}

  grpc::Status PushGradient(grpc::ServerContext* ctx,
                            grpc::ServerReader<v1::GradientChunk>* reader,
                            v1::PushAck* ack) override;
  grpc::Status PullWeights(grpc::ServerContext* ctx, const v1::PullWeightsRequest* req,
                           grpc::ServerWriter<v1::WeightsChunk>* writer) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatReply* reply) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                         v1::AggregatorStatus* reply) override;

 private:
  Aggregator* const aggregator_;
  const size_t chunk_bytes_;
  const absl::Duration max_long_poll_;
  RpcMetrics* const rpc_metrics_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_AGGREGATOR_SERVICE_H_
