#include "hq/hq_service.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "services/net/chunked_stream.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/weights_stream.h"

namespace hips {
HqService::HqService(ParameterServer* server, const EvalLoop* eval, size_t chunk_bytes,
                     absl::Duration max_long_poll, RpcMetrics* rpc_metrics)
    : server_(server),
      eval_(eval),
      encoded_(chunk_bytes),
      max_long_poll_(max_long_poll),
      rpc_metrics_(rpc_metrics) {
  using namespace std::placeholders;  // NOLINT: _1, _2, _3
  AddPush(method::kHqPushAggregate, std::bind(&HqService::PushAggregate, this, _1, _2, _3));
  AddPull<v1::PullWeightsRequest>(method::kHqPullWeights,
                                  std::bind(&HqService::PullWeights, this, _1, _2, _3));
  AddUnary<v1::StatusRequest, v1::StatusReply>(
      method::kHqGetStatus, std::bind(&HqService::GetStatus, this, _1, _2, _3));
  AddUnary<v1::SetModeRequest, v1::SetModeReply>(
      method::kHqSetMode, std::bind(&HqService::SetMode, this, _1, _2, _3));
  AddUnary<v1::HeartbeatRequest, v1::HeartbeatReply>(
      method::kHqHeartbeat, std::bind(&HqService::Heartbeat, this, _1, _2, _3));
}

grpc::Status HqService::PushAggregate(grpc::ServerContext* ctx, PushReader* reader,
                                      v1::PushAck* ack) {
  RpcTimer timer(rpc_metrics_, "PushAggregate");
  v1::AggregateHeader header;
  std::function<absl::StatusOr<PayloadShape>(const v1::AggregateHeader&)> expected =
      [this](const v1::AggregateHeader& h) -> absl::StatusOr<PayloadShape> {
    if (absl::Status s = ValidateAggregateHeader(h); !s.ok()) return s;
    // An empty round has no sum.
    return AnnouncedPayload(h, h.contributor_count() == 0 ? 0 : server_->layout().num_floats());
  };
  // A float32 sum is copied into a spare buffer while its chunks arrive
  // (hot in cache); the first of a round becomes the round's sum.
  const size_t num_floats = static_cast<size_t>(server_->layout().num_floats());
  std::vector<float> buffer = spares_.TakeIfKept(num_floats);
  absl::StatusOr<ReceivedValues> sum = ReadChunkedScaled<v1::AggregateHeader>(
      reader, &header, expected, [](const v1::AggregateHeader&) { return 1.0f; }, &buffer);
  if (!sum.ok()) {
    // An upload the sender cancelled is not a refused aggregate.
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    server_->RecordRefusal(DropReason::kInvalid);
    return ToGrpcStatus(sum.status());
  }
  AggregatePush push;
  push.aggregator = header.aggregator_id();
  push.version = header.version();
  push.total_samples = header.total_samples();
  push.contributors = header.contributor_count();
  push.loss_sum = header.loss_sum();
  push.sequence = header.sequence();
  for (const v1::VersionCount& vc : header.contributor_versions()) {
    push.contributor_versions[vc.version()] += vc.count();
  }
  for (const v1::Contributor& c : header.contributors()) {
    push.contributor_list.push_back({c.worker_id(), c.sequence(), c.version(), c.step()});
  }
  push.single = header.single();
  push.received = *std::move(sum);
  SetPayloadEncoding(header, &push.received.values);
  timer.Received(static_cast<int64_t>(push.received.values.bytes.bytes()));
  if (push.received.scaled) push.received.values.adoptable = &buffer;
  absl::StatusOr<PushResult> result = server_->AcceptAggregate(push);
  // Whichever buffer this call holds now (its own, or the one a round's sum
  // gave up for it) serves a later call.
  if (buffer.size() == num_floats) spares_.Give(std::move(buffer));
  if (!result.ok()) return ToGrpcStatus(result.status());
  ack->set_version(result->version);
  ack->set_duplicate(result->duplicate);
  ack->set_newest_version(result->newest_version);
  return grpc::Status::OK;
}

grpc::Status HqService::PullWeights(grpc::ServerContext* ctx, const v1::PullWeightsRequest* req,
                                    ChunkWriter* writer) {
  const absl::Time deadline =
      req->no_wait() ? absl::Now() : LongPollDeadline(*ctx, max_long_poll_);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> snapshot =
      server_->WaitForWeights(req->min_version(), deadline, req->incarnation());
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  // Timed from here: a long poll's wait is not the cost of sending weights.
  RpcTimer timer(rpc_metrics_, "PullWeights");
  timer.Sent(static_cast<int64_t>((*snapshot)->weights.size() * sizeof(float)));
  if (!WriteWeights(writer, *encoded_.Get(*snapshot))) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the caller went away mid-stream");
  }
  return grpc::Status::OK;
}

grpc::Status HqService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                                  v1::StatusReply* reply) {
  HqStatus status;
  status.server = server_->status();
  status.latest_eval = eval_->latest();
  status.final_eval = eval_->final_result();
  if (absl::Status error = eval_->final_error(); !error.ok()) {
    status.final_eval_error = error.ToString();
  }
  HqStatusToProto(status, absl::Now(), reply);
  return grpc::Status::OK;
}

grpc::Status HqService::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                  v1::HeartbeatReply* reply) {
  absl::StatusOr<HeartbeatRequestData> hb = HeartbeatFromProto(*req);
  if (!hb.ok()) return ToGrpcStatus(hb.status());
  AnswerToProto(server_->Heartbeat(*hb), reply);
  return grpc::Status::OK;
}

grpc::Status HqService::SetMode(grpc::ServerContext* ctx, const v1::SetModeRequest* req,
                                v1::SetModeReply* reply) {
  absl::StatusOr<ModeConfig> mode = ModeFromProto(req->mode());
  if (!mode.ok()) return ToGrpcStatus(mode.status());
  absl::StatusOr<ModeSwitch> result = server_->SetMode(*mode);
  if (!result.ok()) return ToGrpcStatus(result.status());
  reply->set_effective_version(result->effective_version);
  ModeToProto(result->previous, reply->mutable_previous());
  return grpc::Status::OK;
}

}  // namespace hips
