#include "worker/grpc_aggregator_client.h"

#include <memory>
#include <utility>

#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/net/heartbeat_call.h"
#include "services/net/methods.h"
#include "services/net/proto_convert.h"
#include "services/net/push_stream.h"
#include "services/net/weights_stream.h"

namespace hips {
namespace {

class GrpcAggregatorClient final : public AggregatorClient {
 public:
  GrpcAggregatorClient(const std::string& address, std::string id, size_t chunk_bytes,
                       ClientCredentials credentials)
      : channel_(CreateHipsChannel(address, credentials)),
        token_(std::move(credentials.token)),
        stub_(v1::Aggregator::NewStub(channel_)),
        generic_(channel_),
        id_(std::move(id)),
        chunk_bytes_(chunk_bytes) {}

  absl::StatusOr<PushResult> PushGradient(const GradientPush& g) override {
    return PushChunked(&calls_, token_, &generic_, method::kAggregatorPushGradient,
                       GradientHeaderOf(g), PayloadOf(g.gradient, g.encoded),
                       ElementBytes(g.encoded.encoding), chunk_bytes_);
  }

  void CancelCalls() override { calls_.CancelAll(); }
  void CancelInFlight() override { calls_.CancelInFlight(); }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(int64_t min_version,
                                                                     absl::Time deadline,
                                                                     bool no_wait,
                                                                     int64_t incarnation,
                                                                     EdgePosition edge) override {
    return PullWeightsFrom(&generic_, method::kAggregatorPullWeights, &calls_, token_, id_,
                           min_version, deadline, no_wait, incarnation, nullptr, edge);
  }

  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                            absl::Time deadline) override {
    return CallHeartbeat(stub_.get(), &calls_, token_, heartbeat, deadline);
  }

 private:
  const std::shared_ptr<grpc::Channel> channel_;
  const std::string token_;
  const std::unique_ptr<v1::Aggregator::Stub> stub_;  // the small calls
  grpc::GenericStub generic_;                         // the bulk ones
  const std::string id_;
  const size_t chunk_bytes_;
  CallRegistry calls_;
};

}  // namespace

std::unique_ptr<AggregatorClient> CreateGrpcAggregatorClient(const std::string& address,
                                                             const std::string& worker_id,
                                                             size_t chunk_bytes,
                                                             ClientCredentials credentials) {
  return std::make_unique<GrpcAggregatorClient>(address, worker_id, chunk_bytes,
                                                std::move(credentials));
}

}  // namespace hips
