#include "aggregator/aggregator_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/push_reactor.h"
#include "services/net/server_gate.h"

namespace hips {
namespace {

// One PushGradient: a float32 gradient is multiplied by its sample count
// into a spare buffer while its chunks arrive (hot in cache); the buffer may
// become the round's sum (docs/performance.md, step 9). The answer comes
// when the aggregator settles the push (after HQ answered).
class GradientPushReactor final : public PushReactor<v1::GradientHeader> {
 public:
  GradientPushReactor(grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response,
                      Aggregator* aggregator, ServerGate* gate, RpcMetrics* metrics)
      : PushReactor(ctx, response, metrics, "PushGradient", aggregator->SpareBuffer(),
                    /*squares=*/aggregator->WantsSquaredNorms()),
        aggregator_(aggregator),
        gate_(gate) {
    StreamGuard::Slot slot;
    const absl::Status admitted = gate->AdmitStream(ctx, Access::kData, /*push=*/true, &slot);
    Start(admitted, std::move(slot));
  }

  // Whatever buffer this call ends up holding (its own if the push was
  // compressed, refused or a repeat; nothing if a round's sum took it over
  // and the aggregator kept the one it gave back) serves a later push.
  ~GradientPushReactor() override { aggregator_->RecycleSum(std::move(buffer())); }

 private:
  absl::StatusOr<PayloadShape> Expected(const v1::GradientHeader& h) override {
    // A worker pushes under its own id only (mTLS). Once it is known who
    // sent it, a refusal ends the sender's part of its round (Refused).
    if (absl::Status s = ValidateMemberId(h.sender_id(), "sender_id"); !s.ok()) return s;
    if (absl::Status s = gate_->Identify(*context(), h.sender_id()); !s.ok()) return s;
    sender_ = h.sender_id();
    version_ = h.version();
    if (absl::Status s = ValidateGradientHeader(h); !s.ok()) return s;
    if (h.sample_count() > aggregator_->options().max_batch_samples) {
      return absl::InvalidArgumentError(absl::StrCat("sample_count ", h.sample_count(),
                                                     " exceeds --max_batch_samples ",
                                                     aggregator_->options().max_batch_samples));
    }
    std::shared_ptr<const WeightsSnapshot> latest = aggregator_->LatestWeights();
    if (latest == nullptr) {
      return absl::UnavailableError("this aggregator has no weights from HQ yet");
    }
    return AnnouncedPayload(h, latest->layout.num_floats());
  }

  float Scale(const v1::GradientHeader& h) override { return static_cast<float>(h.sample_count()); }

  void Accept(const v1::GradientHeader& h, ReceivedValues values) override {
    GradientPush push = GradientPushOf(h);
    push.received = std::move(values);
    SetPayloadEncoding(h, &push.received.values);
    if (push.received.scaled) push.received.values.adoptable = &buffer();
    aggregator_->AcceptGradient(std::move(push),
                                [this](absl::StatusOr<PushResult> result) { Reply(result); });
  }

  void Refused(const absl::Status& why) override {
    aggregator_->RecordRefusal(absl::IsPermissionDenied(why) ? DropReason::kForbidden
                               : absl::IsUnavailable(why)    ? DropReason::kFutureVersion
                                                             : RefusalReason(why),
                               sender_, version_);
  }

  Aggregator* const aggregator_;
  ServerGate* const gate_;
  // Who sent the push, once identified, and its version.
  std::string sender_;
  int64_t version_ = -1;
};

}  // namespace

AggregatorService::AggregatorService(Aggregator* aggregator, const Authorizer* authorizer,
                                     size_t chunk_bytes, absl::Duration max_long_poll,
                                     RpcMetrics* rpc_metrics, const ServeLimits& limits)
    : aggregator_(aggregator),
      gate_(authorizer, limits),
      encoded_(chunk_bytes),
      max_long_poll_(max_long_poll),
      rpc_metrics_(rpc_metrics) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* AggregatorService::PushGradient(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  return new GradientPushReactor(ctx, response, aggregator_, &gate_, rpc_metrics_);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AggregatorService::PullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  StreamGuard::Slot slot;
  const absl::Status admitted = gate_.AdmitStream(ctx, Access::kData, /*push=*/false, &slot);
  return ServePullWeights(
      ctx, request, aggregator_->weights(), &encoded_, max_long_poll_, rpc_metrics_, admitted,
      [this, ctx](const std::string& requester) { return gate_.Identify(*ctx, requester); },
      std::move(slot));
}

grpc::ServerUnaryReactor* AggregatorService::GetStatus(grpc::CallbackServerContext* ctx,
                                                       const v1::StatusRequest* req,
                                                       v1::AggregatorStatus* reply) {
  if (absl::Status s = gate_.Admit(*ctx, Access::kStatus); !s.ok()) {
    return Answer(ctx, ToGrpcStatus(s));
  }
  AggregatorStatus status = aggregator_->status();
  status.calls_refused = gate_.refusals();
  AggregatorStatusToProto(status, aggregator_->options().clock->Now(), reply);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AggregatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* req,
                                                       v1::HeartbeatReply* reply) {
  if (absl::Status s = gate_.Admit(*ctx, Access::kData); !s.ok()) {
    return Answer(ctx, ToGrpcStatus(s));
  }
  absl::StatusOr<HeartbeatRequestData> hb = HeartbeatFromProto(*req);
  if (!hb.ok()) return Answer(ctx, ToGrpcStatus(hb.status()));
  // A process hosting several homes speaks for each of them.
  std::vector<std::string> homes = std::move(hb->homes);
  homes.insert(homes.begin(), hb->member);
  for (const std::string& home : homes) {
    if (absl::Status s = gate_.Identify(*ctx, home); !s.ok()) return Answer(ctx, ToGrpcStatus(s));
  }
  absl::StatusOr<HeartbeatAnswer> answer = aggregator_->Heartbeat(homes, hb->incarnation, hb->leaving);
  if (!answer.ok()) {  // a full aggregator
    return Answer(ctx, ToGrpcStatus(gate_.Counted(answer.status())));
  }
  AnswerToProto(*answer, reply);
  return Answer(ctx, grpc::Status::OK);
}

}  // namespace hips
