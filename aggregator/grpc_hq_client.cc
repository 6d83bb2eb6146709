#include <memory>
#include <utility>

#include "aggregator/hq_client.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/proto_convert.h"
#include "services/net/push_stream.h"
#include "services/net/raw_service.h"
#include "services/net/grpc_util.h"
#include "services/net/heartbeat_call.h"
#include "services/net/weights_stream.h"

namespace hips {
namespace {

class GrpcHqClient final : public HqClient {
 public:
  GrpcHqClient(const std::string& address, std::string id, size_t chunk_bytes)
      : channel_(CreateHipsChannel(address)),
        stub_(v1::Hq::NewStub(channel_)),
        push_(method::kHqPushAggregate, grpc::internal::RpcMethod::CLIENT_STREAMING, channel_),
        pull_(method::kHqPullWeights, grpc::internal::RpcMethod::SERVER_STREAMING, channel_),
        id_(std::move(id)),
        chunk_bytes_(chunk_bytes) {}

  absl::StatusOr<PushResult> PushAggregate(const AggregatePush& a) override {
    v1::AggregateHeader header;
    v1::AggregateHeader* h = &header;
    h->set_aggregator_id(a.aggregator);
    h->set_version(a.version);
    h->set_total_samples(a.total_samples);
    h->set_contributor_count(static_cast<int32_t>(a.contributors));
    h->set_loss_sum(a.loss_sum);
    h->set_num_floats(static_cast<int64_t>(a.sum.size()));
    h->set_sequence(a.sequence);
    for (const auto& [version, count] : a.contributor_versions) {
      v1::VersionCount* vc = h->add_contributor_versions();
      vc->set_version(version);
      vc->set_count(count);
    }
    for (const ContributorRef& ref : a.contributor_list) {
      v1::Contributor* c = h->add_contributors();
      c->set_worker_id(ref.worker);
      c->set_sequence(ref.sequence);
      c->set_version(ref.version);
      c->set_step(ref.step);
    }
    h->set_single(a.single);
    h->set_encoding(EncodingToProto(a.encoded.encoding));
    h->set_nonzeros(a.encoded.nonzeros);
    return PushChunked(&calls_, channel_.get(), push_, header, PayloadOf(a.sum, a.encoded),
                       ElementBytes(a.encoded.encoding), chunk_bytes_);
  }

  void CancelCalls() override { calls_.CancelAll(); }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline, int64_t incarnation) override {
    return PullWeightsFrom(channel_.get(), pull_, &calls_, id_, min_version, deadline,
                           /*no_wait=*/false, incarnation);
  }

  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData& heartbeat,
                                            absl::Time deadline) override {
    return CallHeartbeat(stub_.get(), &calls_, heartbeat, deadline);
  }

 private:
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Hq::Stub> stub_;  // the small calls
  const grpc::internal::RpcMethod push_;
  const grpc::internal::RpcMethod pull_;
  const std::string id_;
  const size_t chunk_bytes_;
  CallRegistry calls_;
};

}  // namespace

std::unique_ptr<HqClient> CreateGrpcHqClient(const std::string& address,
                                             const std::string& aggregator_id,
                                             size_t chunk_bytes) {
  return std::make_unique<GrpcHqClient>(address, aggregator_id, chunk_bytes);
}

}  // namespace hips
