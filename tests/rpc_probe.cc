#include "tests/rpc_probe.h"

#include <atomic>
#include <chrono>

#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

void Prepare(grpc::ClientContext* ctx, const ClientCredentials& credentials) {
  Authenticate(ctx, credentials.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
}

// A gradient of `floats` zeros.
std::string Zeros(int64_t floats) { return std::string(floats * sizeof(float), '\0'); }

}  // namespace

Codes CallEveryRpc(const std::string& hq_address, const std::string& aggregator_address,
                   const ClientCredentials& credentials, const std::string& aggregator_id,
                   const std::string& worker_id, int64_t floats) {
  static std::atomic<int64_t> sequence{0};
  Codes codes;
  auto hq = v1::Hq::NewStub(CreateHipsChannel(hq_address, credentials));
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::PushAck ack;
    auto writer = hq->PushAggregate(&ctx, &ack);
    v1::AggregateChunk c;
    v1::AggregateHeader* h = c.mutable_header();
    h->set_aggregator_id(aggregator_id);
    h->set_version(0);
    h->set_total_samples(1);
    h->set_contributor_count(1);
    h->set_num_floats(floats);
    h->set_sequence(++sequence);
    h->set_encoding(v1::ENCODING_FP32);
    c.set_data(Zeros(floats));
    writer->Write(c);
    writer->WritesDone();
    codes["Hq.PushAggregate"] = writer->Finish().error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::PullWeightsRequest req;
    req.set_requester_id(aggregator_id);
    req.set_no_wait(true);
    auto reader = hq->PullWeights(&ctx, req);
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) {
    }
    codes["Hq.PullWeights"] = reader->Finish().error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::HeartbeatRequest req;
    req.set_member_id(aggregator_id);
    req.set_incarnation(1);
    v1::HeartbeatReply reply;
    codes["Hq.Heartbeat"] = hq->Heartbeat(&ctx, req, &reply).error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::StatusReply reply;
    codes["Hq.GetStatus"] = hq->GetStatus(&ctx, v1::StatusRequest(), &reply).error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::SetModeRequest req;
    req.mutable_mode()->set_mode(v1::MODE_ASYNC);
    v1::SetModeReply reply;
    codes["Hq.SetMode"] = hq->SetMode(&ctx, req, &reply).error_code();
  }

  auto agg = v1::Aggregator::NewStub(CreateHipsChannel(aggregator_address, credentials));
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::PushAck ack;
    auto writer = agg->PushGradient(&ctx, &ack);
    v1::GradientChunk c;
    v1::GradientHeader* h = c.mutable_header();
    h->set_sender_id(worker_id);
    h->set_version(0);
    h->set_sample_count(1);
    h->set_num_floats(floats);
    h->set_sequence(++sequence);
    h->set_encoding(v1::ENCODING_FP32);
    c.set_data(Zeros(floats));
    writer->Write(c);
    writer->WritesDone();
    codes["Aggregator.PushGradient"] = writer->Finish().error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::PullWeightsRequest req;
    req.set_requester_id(worker_id);
    req.set_no_wait(true);
    auto reader = agg->PullWeights(&ctx, req);
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) {
    }
    codes["Aggregator.PullWeights"] = reader->Finish().error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::HeartbeatRequest req;
    req.set_member_id(worker_id);
    req.set_incarnation(1);
    v1::HeartbeatReply reply;
    codes["Aggregator.Heartbeat"] = agg->Heartbeat(&ctx, req, &reply).error_code();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, credentials);
    v1::AggregatorStatus reply;
    codes["Aggregator.GetStatus"] = agg->GetStatus(&ctx, v1::StatusRequest(), &reply).error_code();
  }
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
