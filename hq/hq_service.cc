#include "hq/hq_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/push_reactor.h"
#include "services/net/server_gate.h"

namespace hips {
namespace {

// One PushAggregate: a float32 sum is copied into a spare buffer while its
// chunks arrive (hot in cache); the first of a round becomes the round's
// sum. Applied, and answered, as soon as it arrived whole.
class AggregatePushReactor final : public PushReactor<v1::AggregateHeader> {
 public:
  AggregatePushReactor(grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response,
                       ParameterServer* server, BufferPool* spares, ServerGate* gate,
                       RpcMetrics* metrics)
      : PushReactor(ctx, response, metrics, "PushAggregate",
                    spares->TakeIfKept(static_cast<size_t>(server->layout().num_floats()))),
        server_(server),
        spares_(spares),
        gate_(gate) {
    StreamGuard::Slot slot;
    const absl::Status admitted = gate->AdmitStream(ctx, Access::kData, /*push=*/true, &slot);
    Start(admitted, std::move(slot));
  }

  // Whichever buffer this call holds now (its own, or the one a round's sum
  // gave up for it) serves a later call.
  ~AggregatePushReactor() override {
    if (buffer().size() == static_cast<size_t>(server_->layout().num_floats())) {
      spares_->Give(std::move(buffer()));
    }
  }

 private:
  absl::StatusOr<PayloadShape> Expected(const v1::AggregateHeader& h) override {
    // An aggregator pushes under its own id only (mTLS). Once it is known
    // who sent it, a refusal ends the sender's part of its round (Refused).
    if (absl::Status s = ValidateMemberId(h.aggregator_id(), "aggregator_id"); !s.ok()) return s;
    if (absl::Status s = gate_->Identify(*context(), h.aggregator_id()); !s.ok()) return s;
    sender_ = h.aggregator_id();
    version_ = h.version();
    if (absl::Status s = ValidateAggregateHeader(h); !s.ok()) return s;
    const ParameterServerOptions& limits = server_->options();
    if (limits.max_workers > 0 && h.contributor_count() > limits.max_workers) {
      return absl::InvalidArgumentError(absl::StrCat("contributor_count ", h.contributor_count(),
                                                     " exceeds --max_workers ",
                                                     limits.max_workers));
    }
    // (The validator bounds the factors: no overflow.) An edge aggregate's
    // samples are those of its earlier rounds' pushes too.
    const int64_t pushes = h.contributor_count() + h.edge_pushes();
    if (h.total_samples() > pushes * limits.max_batch_samples) {
      return absl::InvalidArgumentError(
          absl::StrCat("total_samples ", h.total_samples(), " exceeds ", pushes,
                       " pushes (contributor_count + edge_pushes) times --max_batch_samples ",
                       limits.max_batch_samples));
    }
    // An empty round has no sum.
    return AnnouncedPayload(h, h.contributor_count() == 0 ? 0 : server_->layout().num_floats());
  }

  float Scale(const v1::AggregateHeader&) override { return 1.0f; }

  void Accept(const v1::AggregateHeader& h, ReceivedValues values) override {
    AggregatePush push = AggregatePushOf(h);
    push.received = std::move(values);
    SetPayloadEncoding(h, &push.received.values);
    if (push.received.scaled) push.received.values.adoptable = &buffer();
    Reply(server_->AcceptAggregate(push));
  }

  void Refused(const absl::Status& why) override {
    server_->RecordRefusal(
        absl::IsPermissionDenied(why) ? DropReason::kForbidden : RefusalReason(why), sender_,
        version_);
  }

  ParameterServer* const server_;
  BufferPool* const spares_;
  ServerGate* const gate_;
  // Who sent the aggregate, once identified, and its version.
  std::string sender_;
  int64_t version_ = -1;
};

}  // namespace

HqService::HqService(ParameterServer* server, const EvalLoop* eval, const Authorizer* authorizer,
                     size_t chunk_bytes, absl::Duration max_long_poll, RpcMetrics* rpc_metrics,
                     const ServeLimits& limits,
                     std::optional<WeightsChainOptions> weights_compression)
    : server_(server),
      eval_(eval),
      gate_(authorizer, limits),
      max_long_poll_(max_long_poll),
      rpc_metrics_(rpc_metrics) {
  if (weights_compression.has_value()) {
    auto chain = std::make_unique<ChainWeightsEncoder>(*weights_compression, chunk_bytes);
    chain_ = chain.get();
    encoder_ = std::move(chain);
  } else {
    encoder_ = std::make_unique<WeightsEncodingCache>(chunk_bytes);
  }
}

std::optional<ChainWeightsEncoder::Counters> HqService::weights_chain_counters() const {
  if (chain_ == nullptr) return std::nullopt;
  return chain_->counters();
}

grpc::ServerReadReactor<grpc::ByteBuffer>* HqService::PushAggregate(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  return new AggregatePushReactor(ctx, response, server_, &spares_, &gate_, rpc_metrics_);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HqService::PullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  StreamGuard::Slot slot;
  const absl::Status admitted = gate_.AdmitStream(ctx, Access::kData, /*push=*/false, &slot);
  return ServePullWeights(
      ctx, request, server_->weights(), encoder_.get(), max_long_poll_, rpc_metrics_, admitted,
      [this, ctx](const std::string& requester) { return gate_.Identify(*ctx, requester); },
      std::move(slot));
}

grpc::ServerUnaryReactor* HqService::GetStatus(grpc::CallbackServerContext* ctx,
                                               const v1::StatusRequest* req,
                                               v1::StatusReply* reply) {
  if (absl::Status s = gate_.Admit(*ctx, Access::kStatus); !s.ok()) {
    return Answer(ctx, ToGrpcStatus(s));
  }
  HqStatus status;
  status.server = server_->status();
  status.latest_eval = eval_->latest();
  status.final_eval = eval_->final_result();
  if (absl::Status error = eval_->final_error(); !error.ok()) {
    status.final_eval_error = error.ToString();
  }
  status.calls_refused = gate_.refusals();
  HqStatusToProto(status, server_->options().clock->Now(), reply);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* HqService::Heartbeat(grpc::CallbackServerContext* ctx,
                                               const v1::HeartbeatRequest* req,
                                               v1::HeartbeatReply* reply) {
  if (absl::Status s = gate_.Admit(*ctx, Access::kData); !s.ok())
    return Answer(ctx, ToGrpcStatus(s));
  absl::StatusOr<HeartbeatRequestData> hb = HeartbeatFromProto(*req);
  if (!hb.ok()) return Answer(ctx, ToGrpcStatus(hb.status()));
  if (absl::Status s = gate_.Identify(*ctx, hb->member); !s.ok()) {
    return Answer(ctx, ToGrpcStatus(s));
  }
  absl::StatusOr<HeartbeatAnswer> answer = server_->Heartbeat(*hb);
  if (!answer.ok()) {  // a full HQ
    return Answer(ctx, ToGrpcStatus(gate_.Counted(answer.status())));
  }
  AnswerToProto(*answer, reply);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* HqService::SetMode(grpc::CallbackServerContext* ctx,
                                             const v1::SetModeRequest* req,
                                             v1::SetModeReply* reply) {
  if (absl::Status s = gate_.Admit(*ctx, Access::kAdmin); !s.ok())
    return Answer(ctx, ToGrpcStatus(s));
  absl::StatusOr<ModeConfig> mode = ModeFromProto(req->mode());
  if (!mode.ok()) return Answer(ctx, ToGrpcStatus(mode.status()));
  absl::StatusOr<ModeSwitch> result = server_->SetMode(*mode);
  if (!result.ok()) return Answer(ctx, ToGrpcStatus(result.status()));
  reply->set_effective_version(result->effective_version);
  ModeToProto(result->previous, reply->mutable_previous());
  return Answer(ctx, grpc::Status::OK);
}

}  // namespace hips
