#include "aggregator/aggregator_service.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "services/net/chunked_stream.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/weights_stream.h"

namespace hips {

AggregatorService::AggregatorService(Aggregator* aggregator, size_t chunk_bytes,
                                     absl::Duration max_long_poll, RpcMetrics* rpc_metrics)
    : aggregator_(aggregator),
      encoded_(chunk_bytes),
      max_long_poll_(max_long_poll),
      rpc_metrics_(rpc_metrics) {
  using namespace std::placeholders;  // NOLINT: _1, _2, _3
  AddPush(method::kAggregatorPushGradient,
          std::bind(&AggregatorService::PushGradient, this, _1, _2, _3));
  AddPull<v1::PullWeightsRequest>(method::kAggregatorPullWeights,
                                  std::bind(&AggregatorService::PullWeights, this, _1, _2, _3));
  AddUnary<v1::StatusRequest, v1::AggregatorStatus>(
      method::kAggregatorGetStatus, std::bind(&AggregatorService::GetStatus, this, _1, _2, _3));
  AddUnary<v1::HeartbeatRequest, v1::HeartbeatReply>(
      method::kAggregatorHeartbeat, std::bind(&AggregatorService::Heartbeat, this, _1, _2, _3));
}

grpc::Status AggregatorService::PushGradient(grpc::ServerContext* ctx, PushReader* reader,
                                             v1::PushAck* ack) {
  RpcTimer timer(rpc_metrics_, "PushGradient");
  v1::GradientHeader header;
  std::function<absl::StatusOr<PayloadShape>(const v1::GradientHeader&)> expected =
      [this](const v1::GradientHeader& h) -> absl::StatusOr<PayloadShape> {
    if (absl::Status s = ValidateGradientHeader(h); !s.ok()) return s;
    std::shared_ptr<const WeightsSnapshot> latest = aggregator_->LatestWeights();
    if (latest == nullptr) {
      return absl::UnavailableError("this aggregator has no weights from HQ yet");
    }
    return AnnouncedPayload(h, latest->layout.num_floats());
  };
  // A float32 gradient is multiplied by its sample count into a spare
  // buffer while its chunks arrive (hot in cache); the buffer may become the
  // round's sum (docs/performance.md, step 9).
  std::vector<float> buffer = aggregator_->SpareBuffer();
  // Whatever buffer this call ends up holding (its own if the push was
  // compressed, refused or a repeat; nothing if a round's sum took it over
  // and the aggregator kept the one it gave back) serves a later push.
  absl::Cleanup give_back = [this, &buffer] { aggregator_->RecycleSum(std::move(buffer)); };
  absl::StatusOr<ReceivedValues> gradient = ReadChunkedScaled<v1::GradientHeader>(
      reader, &header, expected,
      [](const v1::GradientHeader& h) { return static_cast<float>(h.sample_count()); }, &buffer);
  if (!gradient.ok()) {
    // An upload the worker cancelled is not a refused gradient.
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    aggregator_->RecordRefusal(absl::IsUnavailable(gradient.status())
                                   ? DropReason::kFutureVersion
                                   : DropReason::kInvalid);
    return ToGrpcStatus(gradient.status());
  }
  GradientPush push;
  push.sender = header.sender_id();
  push.version = header.version();
  push.samples = header.sample_count();
  push.loss_sum = header.loss_sum();
  push.sequence = header.sequence();
  push.retry = header.retry();
  push.step = header.step();
  push.received = *std::move(gradient);
  SetPayloadEncoding(header, &push.received.values);
  if (push.received.scaled) push.received.values.adoptable = &buffer;
  timer.Received(static_cast<int64_t>(push.received.values.bytes.bytes()));
  absl::StatusOr<PushResult> result = aggregator_->AcceptGradient(push);
  if (!result.ok()) return ToGrpcStatus(result.status());
  ack->set_version(result->version);
  ack->set_duplicate(result->duplicate);
  ack->set_newest_version(result->newest_version);
  return grpc::Status::OK;
}

grpc::Status AggregatorService::PullWeights(grpc::ServerContext* ctx,
                                            const v1::PullWeightsRequest* req,
                                            ChunkWriter* writer) {
  const absl::Time deadline =
      req->no_wait() ? absl::Now() : LongPollDeadline(*ctx, max_long_poll_);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> snapshot =
      aggregator_->WaitForWeights(req->min_version(), deadline, req->incarnation());
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  // Timed from here: a long poll's wait is not the cost of sending weights.
  RpcTimer timer(rpc_metrics_, "PullWeights");
  timer.Sent(static_cast<int64_t>((*snapshot)->weights.size() * sizeof(float)));
  if (!WriteWeights(writer, *encoded_.Get(*snapshot))) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker went away mid-stream");
  }
  return grpc::Status::OK;
}

grpc::Status AggregatorService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                                         v1::AggregatorStatus* reply) {
  AggregatorStatusToProto(aggregator_->status(), absl::Now(), reply);
  return grpc::Status::OK;
}

grpc::Status AggregatorService::Heartbeat(grpc::ServerContext* ctx,
                                          const v1::HeartbeatRequest* req,
                                          v1::HeartbeatReply* reply) {
  absl::StatusOr<HeartbeatRequestData> hb = HeartbeatFromProto(*req);
  if (!hb.ok()) return ToGrpcStatus(hb.status());
  AnswerToProto(aggregator_->Heartbeat(hb->member, hb->incarnation, hb->leaving), reply);
  return grpc::Status::OK;
}

}  // namespace hips
