#include "tests/rpc_probe.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

// A client context carrying `credentials`' token, with a deadline.
std::unique_ptr<grpc::ClientContext> Context(const ClientCredentials& credentials) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  Authenticate(ctx.get(), credentials.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ctx;
}

// One push of `chunk`: `open(ctx, ack)` starts the stream.
template <typename Chunk, typename Open>
grpc::StatusCode Push(const ClientCredentials& credentials, const Chunk& chunk, Open open) {
  std::unique_ptr<grpc::ClientContext> ctx = Context(credentials);
  v1::PushAck ack;
  auto writer = open(ctx.get(), &ack);
  writer->Write(chunk);
  writer->WritesDone();
  return writer->Finish().error_code();
}

// One pull of the newest weights, without waiting, as `requester`.
template <typename Open>
grpc::StatusCode Pull(const ClientCredentials& credentials, const std::string& requester,
                      Open open) {
  std::unique_ptr<grpc::ClientContext> ctx = Context(credentials);
  v1::PullWeightsRequest req;
  req.set_requester_id(requester);
  req.set_no_wait(true);
  auto reader = open(ctx.get(), req);
  v1::WeightsChunk chunk;
  while (reader->Read(&chunk)) {
  }
  return reader->Finish().error_code();
}

v1::HeartbeatRequest Beat(const std::string& member) {
  v1::HeartbeatRequest req;
  req.set_member_id(member);
  req.set_incarnation(1);
  return req;
}

std::string Zeros(int64_t floats) { return std::string(floats * sizeof(float), '\0'); }

}  // namespace

Codes CallEveryRpc(const std::string& hq_address, const std::string& aggregator_address,
                   const ClientCredentials& credentials, const std::string& aggregator_id,
                   const std::string& worker_id, int64_t floats) {
  static std::atomic<int64_t> sequence{0};
  Codes codes;
  auto hq = v1::Hq::NewStub(CreateHipsChannel(hq_address, credentials));
  v1::AggregateChunk aggregate;
  v1::AggregateHeader* a = aggregate.mutable_header();
  a->set_aggregator_id(aggregator_id);
  a->set_total_samples(1);
  a->set_contributor_count(1);
  a->set_num_floats(floats);
  a->set_sequence(++sequence);
  aggregate.set_data(Zeros(floats));
  codes["Hq.PushAggregate"] = Push(
      credentials, aggregate, [&](auto* ctx, auto* ack) { return hq->PushAggregate(ctx, ack); });
  codes["Hq.PullWeights"] = Pull(credentials, aggregator_id, [&](auto* ctx, const auto& req) {
    return hq->PullWeights(ctx, req);
  });
  v1::HeartbeatReply beat;
  codes["Hq.Heartbeat"] =
      hq->Heartbeat(Context(credentials).get(), Beat(aggregator_id), &beat).error_code();
  v1::StatusReply status;
  codes["Hq.GetStatus"] =
      hq->GetStatus(Context(credentials).get(), v1::StatusRequest(), &status).error_code();
  v1::SetModeRequest mode;
  mode.mutable_mode()->set_mode(v1::MODE_ASYNC);
  v1::SetModeReply switched;
  codes["Hq.SetMode"] = hq->SetMode(Context(credentials).get(), mode, &switched).error_code();

  auto agg = v1::Aggregator::NewStub(CreateHipsChannel(aggregator_address, credentials));
  v1::GradientChunk gradient;
  v1::GradientHeader* g = gradient.mutable_header();
  g->set_sender_id(worker_id);
  g->set_sample_count(1);
  g->set_num_floats(floats);
  g->set_sequence(++sequence);
  gradient.set_data(Zeros(floats));
  codes["Aggregator.PushGradient"] = Push(
      credentials, gradient, [&](auto* ctx, auto* ack) { return agg->PushGradient(ctx, ack); });
  codes["Aggregator.PullWeights"] = Pull(credentials, worker_id, [&](auto* ctx, const auto& req) {
    return agg->PullWeights(ctx, req);
  });
  codes["Aggregator.Heartbeat"] =
      agg->Heartbeat(Context(credentials).get(), Beat(worker_id), &beat).error_code();
  v1::AggregatorStatus agg_status;
  codes["Aggregator.GetStatus"] =
      agg->GetStatus(Context(credentials).get(), v1::StatusRequest(), &agg_status).error_code();
  return codes;
}

const std::vector<std::string>& EveryRpc() {
  static const auto* rpcs = new std::vector<std::string>{
      "Hq.PushAggregate",       "Hq.PullWeights",       "Hq.Heartbeat",
      "Hq.GetStatus",           "Hq.SetMode",           "Aggregator.PushGradient",
      "Aggregator.PullWeights", "Aggregator.Heartbeat", "Aggregator.GetStatus"};
  return *rpcs;
}

Codes Every(grpc::StatusCode code, const Codes& except) {
  Codes codes;
  for (const std::string& rpc : EveryRpc()) codes[rpc] = code;
  for (const auto& [rpc, c] : except) codes[rpc] = c;
  return codes;
}

}  // namespace hips
