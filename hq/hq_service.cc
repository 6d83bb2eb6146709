#include "hq/hq_service.h"

#include <utility>
#include <vector>

#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/push_reactor.h"

namespace hips {
namespace {

// One PushAggregate: a float32 sum is copied into a spare buffer while its
// chunks arrive (hot in cache); the first of a round becomes the round's
// sum. Applied, and answered, as soon as it arrived whole.
class AggregatePushReactor final : public PushReactor<v1::AggregateHeader> {
 public:
  AggregatePushReactor(grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response,
                       ParameterServer* server, BufferPool* spares, RpcMetrics* metrics)
      : PushReactor(ctx, response, metrics, "PushAggregate",
                    spares->TakeIfKept(static_cast<size_t>(server->layout().num_floats()))),
        server_(server),
        spares_(spares) {
    Start();
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
    if (absl::Status s = ValidateAggregateHeader(h); !s.ok()) return s;
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

  void Refused(const absl::Status&) override { server_->RecordRefusal(DropReason::kInvalid); }

  ParameterServer* const server_;
  BufferPool* const spares_;
};

}  // namespace

HqService::HqService(ParameterServer* server, const EvalLoop* eval, size_t chunk_bytes,
                     absl::Duration max_long_poll, RpcMetrics* rpc_metrics)
    : server_(server),
      eval_(eval),
      encoded_(chunk_bytes),
      max_long_poll_(max_long_poll),
      rpc_metrics_(rpc_metrics) {}

grpc::ServerReadReactor<grpc::ByteBuffer>* HqService::PushAggregate(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response) {
  return new AggregatePushReactor(ctx, response, server_, &spares_, rpc_metrics_);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HqService::PullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  return ServePullWeights(ctx, request, server_->weights(), &encoded_, max_long_poll_,
                          rpc_metrics_);
}

grpc::ServerUnaryReactor* HqService::GetStatus(grpc::CallbackServerContext* ctx,
                                               const v1::StatusRequest* req,
                                               v1::StatusReply* reply) {
  HqStatus status;
  status.server = server_->status();
  status.latest_eval = eval_->latest();
  status.final_eval = eval_->final_result();
  if (absl::Status error = eval_->final_error(); !error.ok()) {
    status.final_eval_error = error.ToString();
  }
  HqStatusToProto(status, absl::Now(), reply);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* HqService::Heartbeat(grpc::CallbackServerContext* ctx,
                                               const v1::HeartbeatRequest* req,
                                               v1::HeartbeatReply* reply) {
  absl::StatusOr<HeartbeatRequestData> hb = HeartbeatFromProto(*req);
  if (!hb.ok()) return Answer(ctx, ToGrpcStatus(hb.status()));
  AnswerToProto(server_->Heartbeat(*hb), reply);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* HqService::SetMode(grpc::CallbackServerContext* ctx,
                                             const v1::SetModeRequest* req,
                                             v1::SetModeReply* reply) {
  absl::StatusOr<ModeConfig> mode = ModeFromProto(req->mode());
  if (!mode.ok()) return Answer(ctx, ToGrpcStatus(mode.status()));
  absl::StatusOr<ModeSwitch> result = server_->SetMode(*mode);
  if (!result.ok()) return Answer(ctx, ToGrpcStatus(result.status()));
  reply->set_effective_version(result->effective_version);
  ModeToProto(result->previous, reply->mutable_previous());
  return Answer(ctx, grpc::Status::OK);
}

}  // namespace hips
