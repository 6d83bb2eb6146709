#include "aggregator/grpc_hq_client.h"

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

class GrpcHqClient final : public HqClient {
 public:
  GrpcHqClient(const std::string& address, std::string id, size_t chunk_bytes,
               ClientCredentials credentials)
      : channel_(CreateHipsChannel(address, credentials)),
        token_(std::move(credentials.token)),
        stub_(v1::Hq::NewStub(channel_)),
        generic_(channel_),
        id_(std::move(id)),
        chunk_bytes_(chunk_bytes) {}

  absl::StatusOr<PushResult> PushAggregate(const AggregatePush& a) override {
    return PushChunked(&calls_, token_, &generic_, method::kHqPushAggregate, AggregateHeaderOf(a),
                       PayloadOf(a.sum, a.encoded), ElementBytes(a.encoded.encoding), chunk_bytes_);
  }

  void CancelCalls() override { calls_.CancelAll(); }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline,
      std::shared_ptr<const WeightsSnapshot> held) override {
    const int64_t incarnation = held == nullptr ? 0 : held->incarnation;
    return PullWeightsFrom(&generic_, method::kHqPullWeights, &calls_, token_, id_, min_version,
                           deadline,
                           /*no_wait=*/false, incarnation, std::move(held));
  }

  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                            absl::Time deadline) override {
    return CallHeartbeat(stub_.get(), &calls_, token_, heartbeat, deadline);
  }

 private:
  const std::shared_ptr<grpc::Channel> channel_;
  const std::string token_;
  const std::unique_ptr<v1::Hq::Stub> stub_;  // the small calls
  grpc::GenericStub generic_;                 // the bulk ones
  const std::string id_;
  const size_t chunk_bytes_;
  CallRegistry calls_;
};

}  // namespace

std::unique_ptr<HqClient> CreateGrpcHqClient(const std::string& address,
                                             const std::string& aggregator_id, size_t chunk_bytes,
                                             ClientCredentials credentials) {
  return std::make_unique<GrpcHqClient>(address, aggregator_id, chunk_bytes,
                                        std::move(credentials));
}

}  // namespace hips
